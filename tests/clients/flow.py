"""One newcomer's flow through the generated Python client against the live service.

argv: base URL, the generated client's folder. Tokens come from the project's own CLI
(JAMBO_CLI, e.g. ".venv/bin/python -m app.cli"), the way a developer would mint them.
"""

import datetime
import os
import shlex
import subprocess
import sys
import uuid
from http import HTTPStatus

sys.path.insert(0, sys.argv[2])

from jambo_client import AuthenticatedClient  # noqa: E402
from jambo_client.api.customer_api_v_3 import v3_get_customer  # noqa: E402
from jambo_client.api.customer_management_api_v_1 import (  # noqa: E402
    v1_create_customer,
    v1_get_customer,
    v1_list_customers,
    v1_patch_customer,
)
from jambo_client.api.jambo_customers import (  # noqa: E402
    jambo_create_customer,
    jambo_request_deletion,
)
from jambo_client.api.loyalty_register import loyalty_create_members  # noqa: E402
from jambo_client.models import (  # noqa: E402
    CustomerEnvelope,
    CustomerIn,
    CustomerV3,
    DeletionRequest,
    LoyaltyMemberWrite,
    MessageEnvelope,
    UpsertResult,
    V1Customer,
    V1CustomerPatch,
    V1CustomerWrite,
    V1ErrorEnvelope,
    V1PageEnvelope,
)

BASE, ORIGIN = sys.argv[1], sys.argv[3]


def token(*args: str) -> str:
    command = [*shlex.split(os.environ["JAMBO_CLI"]), "token", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


def step(name: str, status: HTTPStatus, detail: str) -> None:
    print(f"{name:<34} {int(status)}  {detail}")


def expect(condition: bool, message: str) -> None:
    if not condition:
        sys.exit(f"FLOW FAILED: {message}")


staff = AuthenticatedClient(base_url=BASE, token=token("--staff"))
tag = uuid.uuid4().hex[:8]

created = jambo_create_customer.sync_detailed(
    client=staff,
    body=CustomerIn(
        first_name="Cynthia",
        last_name=f"Norris{tag}",
        email=f"cynthia.{tag}@example.org",
        nationality="Lesotho",
        dob=datetime.date(1985, 9, 6),
        phone_number="0712345678",
    ),
)
expect(isinstance(created.parsed, CustomerEnvelope), f"Jambo create: {created.content!r}")
assert isinstance(created.parsed, CustomerEnvelope)
ulid = created.parsed.body.ulid
step("Jambo create", created.status_code, f"ulid={ulid}")

got = v1_get_customer.sync_detailed(client=staff, customer_id=ulid)
expect(isinstance(got.parsed, V1Customer), f"v1 get: {got.content!r}")
etag = got.headers["ETag"]
step("v1 get (ETag)", got.status_code, f"ETag={etag}")

patched = v1_patch_customer.sync_detailed(
    client=staff, customer_id=ulid, body=V1CustomerPatch(middle_name="Alexander"), if_match=etag
)
expect(isinstance(patched.parsed, V1Customer), f"v1 patch: {patched.content!r}")
assert isinstance(patched.parsed, V1Customer)
expect(patched.parsed.middle_name == "Alexander", "the patch did not apply")
expect(patched.headers["ETag"] != etag, "the ETag did not change")
stale = v1_patch_customer.sync_detailed(
    client=staff, customer_id=ulid, body=V1CustomerPatch(middle_name="X"), if_match=etag
)
expect(stale.status_code == HTTPStatus.PRECONDITION_FAILED, "a stale If-Match was accepted")
step("v1 PATCH (If-Match)", patched.status_code, f"new ETag={patched.headers['ETag']}; stale 412")

refused = v1_create_customer.sync_detailed(
    client=staff, body=V1CustomerWrite(first_name="x" * 31, last_name="Okafor")
)
expect(isinstance(refused.parsed, V1ErrorEnvelope), f"v1 400: {refused.content!r}")
assert isinstance(refused.parsed, V1ErrorEnvelope)
fields = refused.parsed.data.fields
expect(fields is not None and "firstName" in fields.to_dict(), f"no data.fields: {fields!r}")
step("v1 400 (data.fields)", refused.status_code, f"fields={fields.to_dict() if fields else None}")

listed = v1_list_customers.sync_detailed(
    client=staff, last_name=f"Norris{tag}", sort_by="lastName:desc,firstName", page_size=10
)
expect(isinstance(listed.parsed, V1PageEnvelope), f"v1 list: {listed.content!r}")
assert isinstance(listed.parsed, V1PageEnvelope)
page = listed.parsed.data
expect([c.customer_id for c in page.customers] == [ulid], "the filter did not find one")
step("v1 list (filter, sortBy)", listed.status_code, f"totalElements={page.total_elements}")

members = [
    LoyaltyMemberWrite(
        loyalty_id=f"{tag}-{n}",
        client_name=f"Member {n}",
        client_birthday=datetime.date(1982, 11, n),
        cardno=str(n),
        discount="15",
        is_male=n % 2 == 0,
    )
    for n in (1, 2)
]
bulk = loyalty_create_members.sync_detailed(client=staff, body=members)
expect(isinstance(bulk.parsed, UpsertResult), f"loyalty bulk: {bulk.content!r}")
assert isinstance(bulk.parsed, UpsertResult)
expect(bulk.parsed.inserted == 2, "the bulk did not insert two")
step("loyalty bulk upsert", bulk.status_code, f"inserted={bulk.parsed.inserted}")

customer = AuthenticatedClient(base_url=BASE, token=token("--customer", ulid))
me = v3_get_customer.sync_detailed(client=customer)
expect(isinstance(me.parsed, CustomerV3), f"v3 current customer: {me.content!r}")
assert isinstance(me.parsed, CustomerV3)
expect(me.parsed.customer_id == ulid, "v3 answered another customer")
step("v3 current customer", me.status_code, f"{me.parsed.first_name} {me.parsed.last_name}")

asked = jambo_request_deletion.sync_detailed(
    client=customer, customer_ulid=ulid, body=DeletionRequest(origin=ORIGIN)
)
expect(isinstance(asked.parsed, MessageEnvelope), f"deletion request: {asked.content!r}")
assert isinstance(asked.parsed, MessageEnvelope)
expect(asked.status_code == HTTPStatus.OK, f"deletion request: {asked.content!r}")
step("deletion request", asked.status_code, str(asked.parsed.body))

denied = v3_get_customer.sync_detailed(client=staff)
expect(denied.parsed is not None, "a v3 403 did not parse")
step("v3 with a staff token", denied.status_code, f"parsed as {type(denied.parsed).__name__}")
print("flow: OK")
