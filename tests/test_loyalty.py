"""Loyalty register (seed 003): the seed's examples verbatim, DRF errors, bulk, HTML, CLI."""

import asyncio
import csv
import io
import json
import random
import re
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from app.cli import app as jambo_cli
from app.contracts.loyalty.query import parse_is_male, parse_ordering, parse_search
from app.errors import Invalid
from app.loyalty.schemas import FieldError, parse_boolean, parse_date
from tests.conftest import STAFF, auth, create_customer, customer_auth, make_token

URL = "/api/v1/loyalty/"
BASE = "http://testserver/api/v1/loyalty/"
LIST_ALLOW = "GET, POST, HEAD, OPTIONS"
ITEM_ALLOW = "GET, PUT, DELETE, HEAD, OPTIONS, PATCH"
DATE = "Date has wrong format. Use one of these formats instead: YYYY[-MM[-DD]]"
MARIYA = {
    "loyalty_id": "3",
    "cardno": "33",
    "discount": "15",
    "client_name": "Mariya",
    "client_birthday": "1982-11-17",
    "is_male": False,
}
VLAD = {
    "loyalty_id": "2",
    "cardno": "22",
    "discount": "10",
    "client_name": "Vlad",
    "client_birthday": "1976-05-12",
    "is_male": True,
}
DYVNA = {
    "loyalty_id": "4",
    "cardno": "331",
    "discount": "3",
    "client_name": "Mariya Dyvna",
    "client_birthday": "1986-09-01",
    "is_male": False,
}
SEED_BULK = [
    {
        "loyalty_id": "10",
        "cardno": "332",
        "discount": "5",
        "client_name": "Customer #1",
        "client_birthday": "10/20/1970",
        "is_male": True,
    },
    {
        "loyalty_id": "11",
        "cardno": "333",
        "discount": "5",
        "client_name": "Customer #2",
        "client_birthday": "4/12/1994",
        "is_male": False,
    },
    {
        "loyalty_id": "12",
        "cardno": "334",
        "discount": "5",
        "client_name": "Customer #3",
        "client_birthday": "6/11/1985",
        "is_male": False,
    },
]
SELECT = (
    "SELECT loyalty_id, cardno, discount::text, client_name, client_birthday::text, is_male "
    "FROM loyalty_members ORDER BY loyalty_id"
)


def shown(item: dict[str, Any], discount: str, birthday: str) -> dict[str, Any]:
    """What the service renders for an input item."""
    key = item["loyalty_id"]
    return {
        "url": f"{BASE}{key}/",
        **item,
        "discount": discount,
        "client_birthday": f"{birthday}T00:00:00",
    }


async def post(client: httpx.AsyncClient, body: Any, path: str = URL) -> httpx.Response:
    return await client.post(path, json=body, headers=STAFF)


async def stored(db) -> list[tuple]:
    return [tuple(r) for r in await db.fetch(SELECT)]


def assert_contract_headers(response: httpx.Response, allow: str = LIST_ALLOW) -> None:
    assert response.headers["allow"] == allow
    assert "Accept" in [v.strip() for v in response.headers["vary"].split(",")]


# ----------------------------------------------------------------------------- the seed


async def test_seed_post_one_object(client: httpx.AsyncClient, db) -> None:
    response = await post(client, MARIYA, "/api/v1/loyalty/.json")
    assert response.status_code == 201
    assert response.json() == {"updated": 0, "inserted": 1}
    assert response.headers["location"] == f"{BASE}3/"
    assert response.headers["content-type"] == "application/json"
    assert_contract_headers(response)
    assert await stored(db) == [("3", "33", "15.0000", "Mariya", "1982-11-17", False)]


async def test_seed_bulk_upload_counts_updates_and_inserts(client: httpx.AsyncClient, db) -> None:
    await post(client, {**SEED_BULK[0], "client_name": "old"})
    response = await post(client, SEED_BULK, "/api/v1/loyalty/.json")
    assert response.status_code == 201
    assert response.json() == {"updated": 1, "inserted": 2}
    assert "location" not in response.headers
    assert_contract_headers(response)
    assert await stored(db) == [
        ("10", "332", "5.0000", "Customer #1", "1970-10-20", True),
        ("11", "333", "5.0000", "Customer #2", "1994-04-12", False),
        ("12", "334", "5.0000", "Customer #3", "1985-06-11", False),
    ]


async def test_seed_two_element_page(client: httpx.AsyncClient) -> None:
    await post(client, [MARIYA, VLAD, DYVNA])
    response = await client.get(f"{URL}?format=json&page_size=2", headers=STAFF)
    assert response.status_code == 200
    assert_contract_headers(response)
    assert response.json() == {
        "count": 3,
        "next": f"{BASE}?page=2&page_size=2",
        "previous": None,
        "results": [
            shown(MARIYA, "15.00", "1982-11-17"),
            shown(VLAD, "10.00", "1976-05-12"),
        ],
    }
    second = await client.get(response.json()["next"], headers=STAFF)
    assert second.json() == {
        "count": 3,
        "next": None,
        "previous": f"{BASE}?page_size=2",
        "results": [shown(DYVNA, "3.00", "1986-09-01")],
    }


async def test_seed_empty_collection(client: httpx.AsyncClient) -> None:
    await post(client, MARIYA)
    response = await client.get("/api/v1/loyalty/.json/?search=unknown-string", headers=STAFF)
    assert response.status_code == 200
    assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}


async def test_seed_bulk_error_report_writes_nothing(client: httpx.AsyncClient, db) -> None:
    items = [*SEED_BULK[:2], {**SEED_BULK[2], "discount": "five"}]
    response = await post(client, items)
    assert response.status_code == 400
    assert response.json() == [{}, {}, {"discount": ["Enter a number."]}]
    assert_contract_headers(response)
    assert await stored(db) == []


async def test_seed_single_error_report(client: httpx.AsyncClient, db) -> None:
    response = await post(client, {**MARIYA, "client_birthday": "17.11.1982"})
    assert response.status_code == 400
    assert response.json() == {
        "client_birthday": [
            "Date has wrong format. Use one of these formats instead: YYYY[-MM[-DD]]"
        ]
    }
    assert_contract_headers(response)
    assert await stored(db) == []


async def test_seed_get_put_patch_delete_one(client: httpx.AsyncClient, db) -> None:
    await post(client, DYVNA)
    got = await client.get("/api/v1/loyalty/4/.json", headers=STAFF)
    assert got.status_code == 200
    assert_contract_headers(got, ITEM_ALLOW)
    assert got.json() == shown(DYVNA, "3.00", "1986-09-01")

    put = await client.put(
        "/api/v1/loyalty/4/.json",
        json={
            "url": f"{BASE}4/",
            "loyalty_id": "4",
            "cardno": "331",
            "discount": "4.00",
            "client_name": "Mariya Dyvna",
            "client_birthday": "9/1/1986",
            "is_male": False,
        },
        headers=STAFF,
    )
    assert put.status_code == 200
    assert_contract_headers(put, ITEM_ALLOW)
    assert put.json() == shown(DYVNA, "4.00", "1986-09-01")

    patch = await client.patch("/api/v1/loyalty/4/.json", json={"discount": "5.00"}, headers=STAFF)
    assert patch.status_code == 200
    assert patch.json() == shown(DYVNA, "5.00", "1986-09-01")
    assert await stored(db) == [("4", "331", "5.0000", "Mariya Dyvna", "1986-09-01", False)]

    deleted = await client.delete("/api/v1/loyalty/4/", headers=STAFF)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_contract_headers(deleted, ITEM_ALLOW)
    assert await stored(db) == []

    gone = await client.get("/api/v1/loyalty/4/", headers=STAFF)
    assert gone.status_code == 404
    assert gone.json() == {"detail": "Not found"}
    assert_contract_headers(gone, ITEM_ALLOW)


SEED_POST_TEXT = """{
    "loyalty_id": "3",
    "cardno": "33",
    "discount": "15",
    "client_name": "Mariya",
    "client_birthday": "1982-11-17",
    "is_male": false,
}"""
SEED_PATCH_TEXT = """{
    "discount": "5.00",
}"""


async def test_seed_bodies_verbatim_with_their_trailing_commas(
    client: httpx.AsyncClient, db
) -> None:
    json_headers = {**STAFF, "Content-Type": "application/json"}
    created = await client.post(
        "/api/v1/loyalty/.json", content=SEED_POST_TEXT, headers=json_headers
    )
    assert (created.status_code, created.json()) == (201, {"updated": 0, "inserted": 1})
    patched = await client.patch(
        "/api/v1/loyalty/3/.json", content=SEED_PATCH_TEXT, headers=json_headers
    )
    assert patched.status_code == 200
    assert patched.json()["discount"] == "5.00"
    tricky = '{"loyalty_id": "9", "client_name": "a, }", "client_birthday": "1990",}'
    assert (await client.post(URL, content=tricky, headers=json_headers)).status_code == 201
    assert await stored(db) == [
        ("3", "33", "5.0000", "Mariya", "1982-11-17", False),
        ("9", None, None, "a, }", "1990-01-01", None),
    ]


def _action_fields() -> dict[str, Any]:
    return {
        "url": {"type": "field", "required": False, "read_only": True},
        "loyalty_id": {"type": "string", "required": True, "read_only": False, "max_length": 50},
        "cardno": {
            "type": "string",
            "required": False,
            "read_only": False,
            "label": "cardno",
            "max_length": 20,
        },
        "discount": {"type": "decimal", "required": False, "read_only": False, "label": "discount"},
        "client_name": {
            "type": "string",
            "required": True,
            "read_only": False,
            "label": "client name",
            "max_length": 200,
        },
        "client_birthday": {"type": "date", "required": True, "read_only": False},
        "is_male": {"type": "boolean", "required": False, "read_only": False, "label": "is male"},
    }


@pytest.mark.parametrize(
    ("path", "name", "action", "allow"),
    [
        ("/api/v1/loyalty/", "Loyalty List", "POST", LIST_ALLOW),
        ("/api/v1/loyalty/100/", "Loyalty Instance", "PUT", ITEM_ALLOW),
    ],
)
async def test_seed_options_metadata(
    client: httpx.AsyncClient, path: str, name: str, action: str, allow: str
) -> None:
    await post(client, {**MARIYA, "loyalty_id": "100"})
    response = await client.options(path, headers=STAFF)
    assert response.status_code == 200
    assert_contract_headers(response, allow)
    assert response.json() == {
        "name": name,
        "description": "Loyalty",
        "renders": ["application/json", "text/html"],
        "parses": ["application/json", "application/x-www-form-urlencoded", "multipart/form-data"],
        "actions": {action: _action_fields()},
    }


@pytest.mark.parametrize("key", ["100", "x" * 51])
async def test_options_on_a_missing_member_offers_no_put(
    client: httpx.AsyncClient, key: str
) -> None:
    """As DRF: 200 with the metadata, without the PUT action its get_object() could not find."""
    response = await client.options(f"{URL}{key}/", headers=STAFF)
    assert response.status_code == 200
    assert_contract_headers(response, ITEM_ALLOW)
    assert response.json() == {
        "name": "Loyalty Instance",
        "description": "Loyalty",
        "renders": ["application/json", "text/html"],
        "parses": ["application/json", "application/x-www-form-urlencoded", "multipart/form-data"],
    }
    await post(client, {**MARIYA, "loyalty_id": "100"})
    await client.delete(f"{URL}100/", headers=STAFF)
    assert "actions" not in (await client.options(f"{URL}100/", headers=STAFF)).json()


# ----------------------------------------------------------------------------- HEAD, paths


@pytest.mark.parametrize("path", ["/api/v1/loyalty/", "/api/v1/loyalty/3/"])
async def test_head_is_get_without_body(client: httpx.AsyncClient, path: str) -> None:
    await post(client, MARIYA)
    got = await client.get(path, headers=STAFF)
    head = await client.head(path, headers=STAFF)
    assert head.status_code == 200
    assert head.content == b""
    for name in ("allow", "vary", "content-type", "content-length"):
        assert head.headers[name] == got.headers[name]
    missing = await client.head("/api/v1/loyalty/nobody/", headers=STAFF)
    assert (missing.status_code, missing.content) == (404, b"")
    assert_contract_headers(missing, ITEM_ALLOW)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/loyalty",
        "/api/v1/loyalty/.json",
        "/api/v1/loyalty/.json/",
        "/api/v1/loyalty/?format=json",
    ],
)
async def test_list_spellings(client: httpx.AsyncClient, path: str) -> None:
    await post(client, MARIYA)
    response = await client.get(path, headers=STAFF)
    assert response.status_code == 200
    assert response.json()["results"] == [shown(MARIYA, "15.00", "1982-11-17")]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/loyalty/3",
        "/api/v1/loyalty/3/",
        "/api/v1/loyalty/3/.json",
        "/api/v1/loyalty/3/.json/",
    ],
)
async def test_item_spellings(client: httpx.AsyncClient, path: str) -> None:
    await post(client, MARIYA)
    response = await client.get(path, headers=STAFF)
    assert response.status_code == 200
    assert response.json() == shown(MARIYA, "15.00", "1982-11-17")


@pytest.mark.parametrize(
    "path", ["/api/v1/loyalty/?format=xml", "/api/v1/loyalty/.xml", "/api/v1/loyalty/3/.yaml"]
)
async def test_unknown_format_is_404(client: httpx.AsyncClient, path: str) -> None:
    await post(client, MARIYA)
    response = await client.get(path, headers=STAFF)
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found"}


async def test_wrong_methods_are_405_with_allow(client: httpx.AsyncClient, db) -> None:
    await post(client, MARIYA)
    response = await client.delete(URL, headers=STAFF)
    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "DELETE" not allowed.'}
    assert_contract_headers(response)
    response = await client.post(f"{URL}3/", json=MARIYA, headers=STAFF)
    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "POST" not allowed.'}
    assert_contract_headers(response, ITEM_ALLOW)
    assert len(await stored(db)) == 1


async def test_no_content_and_trace(client: httpx.AsyncClient) -> None:
    await post(client, MARIYA)
    deleted = await client.delete(f"{URL}3/?format=api", headers={**STAFF, "Accept": "text/html"})
    assert (deleted.status_code, deleted.content) == (204, b"")
    for path, allow in ((URL, LIST_ALLOW), (f"{URL}3/", ITEM_ALLOW)):
        trace = await client.request("TRACE", path, headers=STAFF)
        assert trace.status_code == 405
        assert trace.json() == {"detail": 'Method "TRACE" not allowed.'}
        assert_contract_headers(trace, allow)


@pytest.mark.parametrize("path", ["/api/v1/loyalty/%00/", "/api/v1/loyalty/" + "x" * 51 + "/"])
async def test_impossible_ids_are_404(client: httpx.AsyncClient, path: str) -> None:
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        response = await client.request(method, path, json=MARIYA, headers=STAFF)
        assert response.status_code == 404, method
        assert response.json() == {"detail": "Not found"}


async def test_urls_follow_root_path_behind_a_gateway(app: Any) -> None:
    transport = httpx.ASGITransport(app=app, root_path="/gw")
    async with httpx.AsyncClient(transport=transport, base_url="https://shop.example") as c:
        created = await c.post("/gw/api/v1/loyalty/", json=MARIYA, headers=STAFF)
        assert created.headers["location"] == "https://shop.example/gw/api/v1/loyalty/3/"
        await c.post("/gw/api/v1/loyalty/", json=VLAD, headers=STAFF)
        page = (await c.get("/gw/api/v1/loyalty/?page_size=1", headers=STAFF)).json()
        assert page["next"] == "https://shop.example/gw/api/v1/loyalty/?page=2&page_size=1"
        assert page["results"][0]["url"] == "https://shop.example/gw/api/v1/loyalty/3/"
        await c.delete("/gw/api/v1/loyalty/3/", headers=STAFF)
        await c.delete("/gw/api/v1/loyalty/2/", headers=STAFF)


# ----------------------------------------------------------------------------- list queries


async def _members(client: httpx.AsyncClient) -> None:
    response = await post(
        client,
        [
            {**MARIYA, "loyalty_id": "a", "cardno": "C-100", "client_name": "Zoe 100%"},
            {**VLAD, "loyalty_id": "b", "cardno": "X_1", "client_name": "adam"},
            {**MARIYA, "loyalty_id": "c", "cardno": None, "client_name": "Bob"},
            {**VLAD, "loyalty_id": "d", "cardno": "c-200", "client_name": "Carl", "is_male": None},
        ],
    )
    assert response.status_code == 201


async def _ids(client: httpx.AsyncClient, query: str) -> list[str]:
    response = await client.get(f"{URL}?{query}", headers=STAFF)
    assert response.status_code == 200, response.text
    return [r["loyalty_id"] for r in response.json()["results"]]


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ("", ["a", "b", "c", "d"]),
        ("is_male=True", ["b"]),
        ("is_male=False", ["a", "c"]),
        ("search=c-", ["a", "d"]),
        ("search=ZOE", ["a"]),
        ("search=%25", ["a"]),
        ("search=_", ["b"]),
        ("search=ADAM", ["b"]),
        ("ordering=identifier", ["a", "b", "c", "d"]),
        ("ordering=-identifier", ["d", "c", "b", "a"]),
        ("ordering=client_birthday", ["b", "d", "a", "c"]),
        ("ordering=-client_birthday", ["a", "c", "b", "d"]),
        ("ordering=client_birthday,-identifier", ["d", "b", "c", "a"]),
        ("ordering=client_name", ["c", "d", "a", "b"]),  # the database's collation
        ("ordering=-client_name", ["b", "a", "d", "c"]),
        ("ordering=cardno", ["a", "b", "d", "c"]),
        ("ordering=-cardno", ["c", "d", "b", "a"]),
        ("search=c&ordering=-cardno&is_male=False", ["a"]),
    ],
)
async def test_filters_search_and_ordering(
    client: httpx.AsyncClient, query: str, ids: list[str]
) -> None:
    await _members(client)
    assert await _ids(client, query) == ids


@pytest.mark.parametrize(
    ("query", "body"),
    [
        (
            "ordering=email",
            {
                "ordering": [
                    'Unknown ordering field "email": use cardno, client_name, client_birthday '
                    'or identifier, with "-" for descending.'
                ]
            },
        ),
        (
            "is_male=maybe",
            {"is_male": ["Select a valid choice. maybe is not one of the available choices."]},
        ),
        ("search=a%00b", {"search": ["Null characters are not allowed."]}),
    ],
)
async def test_bad_list_parameters_are_400(
    client: httpx.AsyncClient, query: str, body: dict
) -> None:
    response = await client.get(f"{URL}?{query}", headers=STAFF)
    assert response.status_code == 400
    assert response.json() == body
    assert_contract_headers(response)


@pytest.mark.parametrize("page", ["0", "-1", "abc", "3", "99999999999999", "1.5", "²", "--1", "٣"])
async def test_invalid_pages_are_404(client: httpx.AsyncClient, page: str) -> None:
    await _members(client)
    response = await client.get(f"{URL}?page={page}&page_size=2", headers=STAFF)
    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid page."}
    assert_contract_headers(response)


async def test_page_size_default_cap_and_last_page(client: httpx.AsyncClient) -> None:
    await _members(client)
    assert len(await _ids(client, "page_size=5000")) == 4
    assert len(await _ids(client, "page_size=-3")) == 4
    assert len(await _ids(client, "page_size=abc")) == 4
    last = await client.get(f"{URL}?page=last&page_size=3&search=", headers=STAFF)
    assert last.json()["results"][0]["loyalty_id"] == "d"
    assert last.json()["previous"] == f"{BASE}?page_size=3&search="
    many = [{**MARIYA, "loyalty_id": f"m{i:04d}"} for i in range(1100)]
    assert (await post(client, many)).status_code == 201
    capped = (await client.get(f"{URL}?page_size=5000", headers=STAFF)).json()
    assert (capped["count"], len(capped["results"])) == (1104, 1000)
    assert capped["next"] == f"{BASE}?page=2&page_size=5000"
    default = (await client.get(URL, headers=STAFF)).json()
    assert len(default["results"]) == 100
    assert default["next"] == f"{BASE}?page=2"


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"loyalty_id": None}, {"loyalty_id": ["This field may not be null."]}),
        ({"loyalty_id": "  "}, {"loyalty_id": ["This field may not be blank."]}),
        (
            {"loyalty_id": "x" * 51},
            {"loyalty_id": ["Ensure this field has no more than 50 characters."]},
        ),
        ({"loyalty_id": ["1"]}, {"loyalty_id": ["Not a valid string."]}),
        ({"cardno": "1" * 21}, {"cardno": ["Ensure this field has no more than 20 characters."]}),
        (
            {"client_name": "x" * 201},
            {"client_name": ["Ensure this field has no more than 200 characters."]},
        ),
        ({"client_name": "Ma\x00riya"}, {"client_name": ["Null characters are not allowed."]}),
        ({"discount": "abc"}, {"discount": ["Enter a number."]}),
        ({"discount": "NaN"}, {"discount": ["Enter a number."]}),
        ({"discount": True}, {"discount": ["Enter a number."]}),
        (
            {"discount": "1.23456"},
            {"discount": ["Ensure that there are no more than 4 decimal places."]},
        ),
        (
            {"discount": "1" * 17},
            {
                "discount": [
                    "Ensure that there are no more than 16 digits before the decimal point."
                ]
            },
        ),
        ({"client_birthday": "2020-13-01"}, {"client_birthday": [DATE]}),
        ({"client_birthday": "2021-02-29"}, {"client_birthday": [DATE]}),
        ({"client_birthday": "0000-01-01"}, {"client_birthday": [DATE]}),
        ({"client_birthday": "1982-11-1x"}, {"client_birthday": [DATE]}),
        (
            {"discount": "12345678901234567.1"},
            {
                "discount": [
                    "Ensure that there are no more than 16 digits before the decimal point."
                ]
            },
        ),
        ({"client_birthday": "2/30/2000"}, {"client_birthday": [DATE]}),
        ({"client_birthday": "17/11/1982"}, {"client_birthday": [DATE]}),
        ({"client_birthday": 1982}, {"client_birthday": [DATE]}),
        ({"client_birthday": None}, {"client_birthday": ["This field may not be null."]}),
        ({"is_male": "maybe"}, {"is_male": ["Must be a valid boolean."]}),
        ({"is_male": 2}, {"is_male": ["Must be a valid boolean."]}),
        (
            {"discount": "x", "client_birthday": "x", "is_male": "x"},
            {
                "discount": ["Enter a number."],
                "client_birthday": [DATE],
                "is_male": ["Must be a valid boolean."],
            },
        ),
    ],
)
async def test_field_errors(client: httpx.AsyncClient, db, changes: dict, errors: dict) -> None:
    response = await post(client, {**MARIYA, **changes})
    assert response.status_code == 400
    assert response.json() == errors
    assert await stored(db) == []


async def test_required_fields_on_create(client: httpx.AsyncClient, db) -> None:
    response = await post(client, {"cardno": "1"})
    assert response.status_code == 400
    required = ["This field is required."]
    assert response.json() == {
        "loyalty_id": required,
        "client_name": required,
        "client_birthday": required,
    }
    assert await stored(db) == []


@pytest.mark.parametrize(
    ("body", "kind"), [("abc", "str"), (42, "int"), (None, "NoneType"), (True, "bool")]
)
async def test_non_object_bodies(client: httpx.AsyncClient, db, body: Any, kind: str) -> None:
    expected = {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {kind}."]}
    single = await client.post(
        URL, content=json.dumps(body), headers={**STAFF, "Content-Type": "application/json"}
    )
    assert (single.status_code, single.json()) == (400, expected)
    bulk = await post(client, [MARIYA, body])
    assert (bulk.status_code, bulk.json()) == (400, [{}, expected])
    assert await stored(db) == []


@pytest.mark.parametrize(
    ("given", "birthday"),
    [
        ("1982-11-17", "1982-11-17"),
        ("1982", "1982-01-01"),
        ("1982-11", "1982-11-01"),
        ("11/17/1982", "1982-11-17"),
        ("1/2/1982", "1982-01-02"),
        ("1982-11-17T00:00:00", "1982-11-17"),
        # beside the common YYYY-MM-DD (a faster parser), the spellings it refuses
        (" 1982-11-17 ", "1982-11-17"),
        ("1982-1-7", "1982-01-07"),
        ("\u0661\u0669\u0668\u0662-\u0661\u0661-\u0661\u0667", "1982-11-17"),
    ],
)
async def test_date_formats(client: httpx.AsyncClient, given: str, birthday: str) -> None:
    await post(client, {**MARIYA, "client_birthday": given})
    body = (await client.get(f"{URL}3/", headers=STAFF)).json()
    assert body["client_birthday"] == f"{birthday}T00:00:00"


@pytest.mark.parametrize(
    ("given", "discount"),
    [
        ("15", "15.00"),
        (15, "15.00"),
        (4.5, "4.50"),
        ("3.125", "3.1250"),
        ("3.1250", "3.1250"),
        ("-1", "-1.00"),
        (" 0.0001 ", "0.0001"),
        ("1e2", "100.00"),
        (None, None),
        # at the bounds of the plain spelling (a faster path) and just past its shape
        ("1234567890123456.1234", "1234567890123456.1234"),
        ("-0.0001", "-0.0001"),
        ("0000000000000000000012", "12.00"),
        ("+7", "7.00"),
    ],
)
async def test_discount_renders_two_decimals_at_least(
    client: httpx.AsyncClient, given: Any, discount: str | None
) -> None:
    assert (await post(client, {**MARIYA, "discount": given})).status_code == 201
    assert (await client.get(f"{URL}3/", headers=STAFF)).json()["discount"] == discount


async def test_ids_and_numbers_are_read_as_strings_and_trimmed(
    client: httpx.AsyncClient, db
) -> None:
    response = await post(
        client, {**MARIYA, "loyalty_id": 77, "cardno": 1234, "client_name": " M "}
    )
    assert response.headers["location"] == f"{BASE}77/"
    assert await stored(db) == [("77", "1234", "15.0000", "M", "1982-11-17", False)]


# ----------------------------------------------------------------------------- bulk


async def test_bulk_with_bad_items_in_the_middle_writes_nothing(
    client: httpx.AsyncClient, db
) -> None:
    await post(client, MARIYA)
    before = await stored(db)
    items = [{**VLAD, "loyalty_id": str(i)} for i in range(20)]
    items[7] = {**items[7], "client_birthday": "never"}
    items[12] = {"loyalty_id": "3", "client_name": "changed"}
    items[13] = "text"
    response = await post(client, items)
    assert response.status_code == 400
    expected: list[dict] = [{} for _ in items]
    expected[7] = {"client_birthday": [DATE]}
    expected[12] = {"client_birthday": ["This field is required."]}
    expected[13] = {"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]}
    assert response.json() == expected
    assert await stored(db) == before


async def test_repeated_id_in_one_bulk_last_wins(client: httpx.AsyncClient, db) -> None:
    items = [
        {**MARIYA, "client_name": "first"},
        {**VLAD},
        {**MARIYA, "client_name": "second", "cardno": None},
        {**MARIYA, "client_name": "third", "discount": "1"},
    ]
    response = await post(client, items)
    assert response.status_code == 201
    assert response.json() == {"updated": 2, "inserted": 2}
    assert await stored(db) == [
        ("2", "22", "10.0000", "Vlad", "1976-05-12", True),
        ("3", "33", "1.0000", "third", "1982-11-17", False),
    ]


async def test_upsert_replaces_every_field(client: httpx.AsyncClient, db) -> None:
    await post(client, MARIYA)
    replacement = {"loyalty_id": "3", "client_name": "New", "client_birthday": "2001"}
    response = await post(client, replacement)
    assert response.json() == {"updated": 1, "inserted": 0}
    assert await stored(db) == [("3", None, None, "New", "2001-01-01", None)]


async def test_empty_bulk_is_a_no_op(client: httpx.AsyncClient) -> None:
    response = await post(client, [])
    assert (response.status_code, response.json()) == (201, {"updated": 0, "inserted": 0})


async def test_ten_thousand_items_in_one_request(client: httpx.AsyncClient, db) -> None:
    items = [
        {
            "loyalty_id": f"member-{i:06d}",
            "cardno": f"{i:020d}",
            "discount": f"{i % 50}.{i % 10000:04d}",
            "client_name": f"Customer number {i} of the big upload",
            "client_birthday": f"{1 + i % 12}/{1 + i % 28}/19{50 + i % 50}",
            "is_male": i % 2 == 0,
        }
        for i in range(10_000)
    ]
    await post(client, items[:10])
    response = await post(client, items)
    assert response.status_code == 201, response.text
    assert len(response.request.content) > 1024 * 1024  # above the general body limit
    assert response.json() == {"updated": 10, "inserted": 9990}
    assert await db.fetchval("SELECT count(*) FROM loyalty_members") == 10_000
    row = await db.fetchrow(
        "SELECT discount::text, client_birthday::text FROM loyalty_members "
        "WHERE loyalty_id = 'member-009999'"
    )
    assert tuple(row) == ("49.9999", "1999-04-04")


async def test_too_many_items_is_400(client: httpx.AsyncClient, db, settings) -> None:
    items = [{"loyalty_id": str(i)} for i in range(settings.max_bulk_items + 1)]
    response = await post(client, items)
    assert response.status_code == 400
    assert response.json() == {
        "non_field_errors": [
            f"Ensure this field has no more than {settings.max_bulk_items} elements."
        ]
    }
    assert await stored(db) == []


async def test_concurrent_overlapping_bulk_uploads(client: httpx.AsyncClient, db) -> None:
    """Overlapping uploads in opposite orders: no deadlock, no lost row, counts add up."""
    rng = random.Random(3)
    uploads = []
    for n in range(8):
        keys = [f"k{i:05d}" for i in range(n * 300, n * 300 + 1500)]
        rng.shuffle(keys)
        uploads.append(
            [
                {"loyalty_id": k, "client_name": f"upload {n}", "client_birthday": "1990"}
                for k in keys
            ]
        )
    responses = await asyncio.gather(*(post(client, items) for items in uploads))
    assert [r.status_code for r in responses] == [201] * 8
    union = {item["loyalty_id"] for items in uploads for item in items}
    inserted = sum(r.json()["inserted"] for r in responses)
    updated = sum(r.json()["updated"] for r in responses)
    assert inserted == len(union) == 3600
    assert inserted + updated == 8 * 1500
    assert await db.fetchval("SELECT count(*) FROM loyalty_members") == len(union)


# ----------------------------------------------------------------------------- bodies


async def test_form_encodings_create_one_member(client: httpx.AsyncClient, db) -> None:
    form = {**{k: str(v) for k, v in MARIYA.items()}, "is_male": "false"}
    urlencoded = await client.post(URL, data=form, headers=STAFF)
    assert (urlencoded.status_code, urlencoded.json()) == (201, {"updated": 0, "inserted": 1})
    multipart = await client.post(
        URL, data={**form, "cardno": ""}, files={"unused": ("x.txt", b"x")}, headers=STAFF
    )
    assert multipart.headers["content-type"].startswith("application/json")
    assert (multipart.status_code, multipart.json()) == (201, {"updated": 1, "inserted": 0})
    assert multipart.request.headers["content-type"].startswith("multipart/form-data")
    assert await stored(db) == [("3", None, "15.0000", "Mariya", "1982-11-17", False)]
    bad = await client.post(URL, data={**form, "discount": "x"}, headers=STAFF)
    assert (bad.status_code, bad.json()) == (400, {"discount": ["Enter a number."]})


async def test_raw_json_form_field_uploads_a_list(client: httpx.AsyncClient, db) -> None:
    data = {"_content_type": "application/json", "_content": json.dumps(SEED_BULK)}
    response = await client.post(URL, data=data, headers=STAFF)
    assert (response.status_code, response.json()) == (201, {"updated": 0, "inserted": 3})


@pytest.mark.parametrize(
    ("content", "ctype", "status", "detail"),
    [
        (b'{"loyalty_id": ', "application/json", 400, "JSON parse error - "),
        (b'{"client_name": "\\ud800"}', "application/json", 400, "JSON parse error - "),
        (b"\xff\xfe", "application/json", 400, "JSON parse error - "),
        (b"loyalty_id=3", "text/plain", 415, 'Unsupported media type "text/plain" in request.'),
    ],
)
async def test_unparseable_bodies(
    client: httpx.AsyncClient, db, content: bytes, ctype: str, status: int, detail: str
) -> None:
    response = await client.post(URL, content=content, headers={**STAFF, "Content-Type": ctype})
    assert response.status_code == status
    assert set(response.json()) == {"detail"}
    assert response.json()["detail"].startswith(detail)
    assert_contract_headers(response)
    assert await stored(db) == []


async def test_oversized_bodies_are_413(client: httpx.AsyncClient, db, settings) -> None:
    await post(client, MARIYA)
    big_item = {**MARIYA, "client_name": "x" * (settings.max_body_bytes + 10)}
    put = await client.put(f"{URL}3/", json=big_item, headers=STAFF)
    assert put.status_code == 413
    assert put.json() == {"detail": f"Request body is larger than {settings.max_body_bytes} bytes."}
    assert_contract_headers(put, ITEM_ALLOW)
    huge = [{**MARIYA, "client_name": "y" * 190}] * settings.max_bulk_items * 3
    bulk = await post(client, huge)
    assert bulk.status_code == 413
    assert set(bulk.json()) == {"detail"}
    assert await stored(db) == [("3", "33", "15.0000", "Mariya", "1982-11-17", False)]


# ----------------------------------------------------------------------------- PUT and PATCH


async def test_put_renames_and_url_follows(client: httpx.AsyncClient, db) -> None:
    await post(client, DYVNA)
    response = await client.put(f"{URL}4/", json={**DYVNA, "loyalty_id": "40"}, headers=STAFF)
    assert response.status_code == 200
    assert response.json() == shown({**DYVNA, "loyalty_id": "40"}, "3.00", "1986-09-01")
    assert (await client.get(f"{URL}4/", headers=STAFF)).status_code == 404
    assert (await client.get(f"{URL}40/", headers=STAFF)).status_code == 200


async def test_put_keeps_the_customer_link(client: httpx.AsyncClient, db) -> None:
    customer = await create_customer(client)
    await post(client, DYVNA)
    await db.execute("UPDATE loyalty_members SET customer_id = (SELECT id FROM customers)")
    await client.put(f"{URL}4/", json={**DYVNA, "client_name": "x"}, headers=STAFF)
    assert await db.fetchval("SELECT customer_id IS NOT NULL FROM loyalty_members")
    deleted = await client.delete(f"/api/customer/{customer['ulid']}", headers=STAFF)
    assert deleted.status_code == 200
    assert await stored(db) == []


async def test_rename_onto_existing_id_is_400(client: httpx.AsyncClient, db) -> None:
    await post(client, [MARIYA, DYVNA])
    before = await stored(db)
    for method in ("PUT", "PATCH"):
        response = await client.request(
            method, f"{URL}4/", json={**DYVNA, "loyalty_id": "3"}, headers=STAFF
        )
        assert response.status_code == 400
        assert response.json() == {
            "loyalty_id": ["loyalty member with this loyalty_id already exists."]
        }
        assert_contract_headers(response, ITEM_ALLOW)
    assert await stored(db) == before


async def test_put_needs_the_required_fields_and_nulls_the_rest(
    client: httpx.AsyncClient, db
) -> None:
    await post(client, MARIYA)
    missing = await client.put(f"{URL}3/", json={"loyalty_id": "3"}, headers=STAFF)
    assert missing.status_code == 400
    assert missing.json() == {
        "client_name": ["This field is required."],
        "client_birthday": ["This field is required."],
    }
    full = await client.put(
        f"{URL}3/",
        json={"loyalty_id": "3", "client_name": "M", "client_birthday": "1982"},
        headers=STAFF,
    )
    assert full.status_code == 200
    assert await stored(db) == [("3", None, None, "M", "1982-01-01", None)]


async def test_patch_changes_only_given_fields(client: httpx.AsyncClient, db) -> None:
    await post(client, MARIYA)
    response = await client.patch(
        f"{URL}3/", json={"is_male": "true", "cardno": None}, headers=STAFF
    )
    assert response.status_code == 200
    assert await stored(db) == [("3", None, "15.0000", "Mariya", "1982-11-17", True)]
    bad = await client.patch(f"{URL}3/", json={"client_name": None}, headers=STAFF)
    assert (bad.status_code, bad.json()) == (400, {"client_name": ["This field may not be null."]})
    empty = await client.patch(f"{URL}3/", json={}, headers=STAFF)
    assert empty.json() == shown({**MARIYA, "cardno": None, "is_male": True}, "15.00", "1982-11-17")


async def test_writes_to_unknown_members_are_404(client: httpx.AsyncClient, db) -> None:
    for method, body in (
        ("PUT", MARIYA),
        ("PATCH", {"cardno": "1"}),
        ("PUT", {}),
        ("DELETE", None),
    ):
        response = await client.request(method, f"{URL}nobody/", json=body, headers=STAFF)
        assert response.status_code == 404, method
        assert response.json() == {"detail": "Not found"}
    assert await stored(db) == []


# ----------------------------------------------------------------------------- auth

READ_ONLY = auth(make_token(scope="loyalty:read"))
WRONG_SCOPE = auth(make_token(scope="customers:read customers:write"))


@pytest.mark.parametrize(
    ("method", "path", "needs"),
    [
        ("GET", URL, "read"),
        ("HEAD", URL, "read"),
        ("OPTIONS", URL, "read"),
        ("POST", URL, "write"),
        ("GET", f"{URL}3/", "read"),
        ("OPTIONS", f"{URL}3/", "read"),
        ("PUT", f"{URL}3/", "write"),
        ("PATCH", f"{URL}3/", "write"),
        ("DELETE", f"{URL}3/", "write"),
    ],
)
async def test_auth_matrix(
    client: httpx.AsyncClient, db, method: str, path: str, needs: str
) -> None:
    await post(client, MARIYA)
    allow = ITEM_ALLOW if path != URL else LIST_ALLOW
    body = MARIYA if method in ("POST", "PUT", "PATCH") else None
    cases = [
        ({}, 401, "Authentication credentials were not provided.", "Bearer"),
        (auth("garbage"), 401, "Invalid token.", 'Bearer error="invalid_token"'),
        (customer_auth("01HWJ8WH9X8WBK65EMGY9YKPBS"), 403, None, None),
        (WRONG_SCOPE, 403, None, None),
    ]
    if needs == "write":
        cases.append((READ_ONLY, 403, None, None))
    for headers, status, detail, challenge in cases:
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code == status, (headers, response.text)
        assert_contract_headers(response, allow)
        if method != "HEAD":
            expected = detail or "You do not have permission to perform this action."
            assert response.json() == {"detail": expected}
        if challenge:
            assert response.headers["www-authenticate"] == challenge
    assert await stored(db) == [("3", "33", "15.0000", "Mariya", "1982-11-17", False)]


# ----------------------------------------------------------------------------- browsable page


async def test_browsable_list_page_escapes_and_links(client: httpx.AsyncClient) -> None:
    await post(client, [{**MARIYA, "client_name": "<script>alert(1)</script>"}, VLAD])
    response = await client.get("/api/v1/loyalty/.api?page_size=1", headers=STAFF)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert_contract_headers(response)
    page = response.text
    assert "<title>Loyalty List" in page
    assert "&quot;client_name&quot;: &quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;" in page
    assert "<script>alert" not in page
    assert f'<a data-api href="{BASE}3/">{BASE}3/</a>' in page
    assert 'rel="next" href="http://testserver/api/v1/loyalty/.api?page=2&amp;page_size=1"' in page
    assert f'method="post" action="{BASE}?format=api"' in page
    for name in ("loyalty_id", "cardno", "discount", "client_name", "client_birthday", "is_male"):
        assert f'name="{name}"' in page


async def test_browser_form_post_answers_with_html(client: httpx.AsyncClient, db) -> None:
    form = {
        "loyalty_id": "7",
        "cardno": "",
        "discount": "2.5",
        "client_name": "<b>Ann</b>",
        "client_birthday": "2000-01-31",
        "is_male": "",
    }
    created = await client.post(f"{URL}?format=api", data=form, headers=STAFF)
    assert created.status_code == 201
    assert created.headers["content-type"] == "text/html; charset=utf-8"
    assert created.headers["location"] == f"{BASE}7/"
    assert "HTTP 201 Created" in created.text
    assert "&quot;inserted&quot;: 1" in created.text
    assert await stored(db) == [("7", None, "2.5000", "<b>Ann</b>", "2000-01-31", None)]
    invalid = await client.post(
        f"{URL}?format=api", data={**form, "client_birthday": "soon"}, headers=STAFF
    )
    assert invalid.status_code == 400
    assert "HTTP 400 Bad Request" in invalid.text
    assert "Date has wrong format." in invalid.text
    item = await client.get(f"{URL}7/", headers={**STAFF, "Accept": "text/html"})
    assert "<title>Loyalty Instance" in item.text
    assert 'value="&lt;b&gt;Ann&lt;/b&gt;"' in item.text


async def test_item_page_forms_put_and_delete(client: httpx.AsyncClient, db) -> None:
    await post(client, MARIYA)
    form = {
        "_method": "PUT",
        "loyalty_id": "8",
        "client_name": "M",
        "client_birthday": "1982-11-17",
    }
    put = await client.post(f"{URL}3/?format=api", data=form, headers=STAFF)
    assert put.status_code == 200
    assert f'action="{BASE}8/?format=api"' in put.text
    assert await stored(db) == [("8", None, None, "M", "1982-11-17", None)]
    delete = await client.post(f"{URL}8/?format=api", data={"_method": "DELETE"}, headers=STAFF)
    assert delete.status_code == 303
    assert delete.headers["location"] == f"{BASE}?format=api"
    assert await stored(db) == []


async def test_unauthenticated_browser_gets_the_page_with_a_token_box(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(URL, headers={"Accept": "text/html,application/xhtml+xml"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Authentication credentials were not provided." in response.text
    assert 'id="token"' in response.text


async def test_openapi_documents_the_register(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert set(paths["/api/v1/loyalty/"]) == {"get", "head", "post", "options"}
    assert set(paths["/api/v1/loyalty/{loyalty_id}/"]) == {
        "get",
        "head",
        "put",
        "patch",
        "delete",
        "options",
    }
    assert paths["/api/v1/loyalty/"]["post"]["tags"] == ["Loyalty register"]
    assert "201" in paths["/api/v1/loyalty/"]["post"]["responses"]


def _accepts(parse: Any, value: str) -> bool:
    try:
        parse(value)
    except (Invalid, FieldError):
        return False
    return True


# (where the pattern is documented, the parser it describes, values; `exact`: the pattern
# admits nothing the parser refuses; otherwise only the other way round.)
DOCUMENTED_FORMATS = [
    (
        ("query", "is_male"),
        parse_is_male,
        ["True", "false", " 1 ", "0", "UNKNOWN", "", "maybe", "yes", "2", "truee", "t rue"],
        True,
    ),
    (
        ("query", "ordering"),
        parse_ordering,
        ["cardno", "-identifier, client_name", ",,", " -cardno ", "email", "--cardno", "- cardno"],
        True,
    ),
    (("query", "search"), parse_search, ["a b", "", "a\x00b"], True),
    (
        ("body", "is_male"),
        parse_boolean,
        ["yes", "OFF", "null", "None", "", " t ", "maybe", "2", "yess"],
        True,
    ),
    (
        ("body", "client_birthday"),
        parse_date,
        [
            "1982-11-17",
            "1982",
            "1982-11",
            "9/1/1986",
            "1986-09-01T00:00:00",
            " 1986-9-1 ",
            "2/30/1990",
        ]
        + ["17.11.1982", "1982-11-17T10:00", "86-9-1", "x", ""],
        False,  # the shape only: 2/30/1990 matches and is refused (400)
    ),
]


@pytest.mark.parametrize(("where", "parse", "values", "exact"), DOCUMENTED_FORMATS)
async def test_documented_formats_are_what_the_parsers_accept(
    client: httpx.AsyncClient, where: tuple[str, str], parse: Any, values: list[str], exact: bool
) -> None:
    spec = (await client.get("/openapi.json")).json()
    operations = spec["paths"]["/api/v1/loyalty/"]
    if where[0] == "query":
        (schema,) = [p["schema"] for p in operations["get"]["parameters"] if p["name"] == where[1]]
    else:
        # the form's schema (text fields), named in the POST's description
        assert "LoyaltyMemberForm" in operations["post"]["description"]
        schema = spec["components"]["schemas"]["LoyaltyMemberForm"]["properties"][where[1]]
    for value in values:
        matches = re.search(schema["pattern"], value) is not None
        assert matches or not _accepts(parse, value), value
        if exact:
            assert matches == _accepts(parse, value), value


async def test_openapi_documents_what_the_register_answers(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    item = spec["paths"]["/api/v1/loyalty/{loyalty_id}/"]
    assert item["put"]["requestBody"]["required"] is True
    assert item["patch"]["requestBody"]["required"] is False  # an empty PATCH changes nothing
    assert "required" not in item["patch"]["requestBody"]["content"]["application/json"]["schema"]
    # ?format=api renders any answer as the browsable page
    for status in ("200", "400", "404"):
        assert "text/html" in item["put"]["responses"][status]["content"]
    empty = await client.patch(f"{URL}nobody/", headers=STAFF)
    assert empty.status_code == 404
    await post(client, MARIYA)
    unchanged = await client.patch(f"{URL}3/", headers=STAFF)
    assert unchanged.status_code == 200 and unchanged.json()["client_name"] == "Mariya"


# ----------------------------------------------------------------------------- CLI


CSV_FILE = (
    "Loyalty_ID, cardno,discount,client_name,client_birthday,is_male,notes\n"
    "1,11,5,Ann,10/20/1970,true,x\n"
    "2,,x,Bob,1980,,\n"
    "1,11,6.125,Ann B,1970-10-20,false,\n"
    "3,,,Cid,bad,,\n"
    "4,44,,Dan,1990-02,0,\n"
)


def test_cli_import_then_export(tmp_path, settings, client) -> None:
    path = tmp_path / "members.csv"
    path.write_text(CSV_FILE, encoding="utf-8")
    env = {"DATABASE_URL": settings.database_url}
    runner = CliRunner()
    result = runner.invoke(
        jambo_cli, ["loyalty", "import", str(path), "--batch-size", "2"], env=env
    )
    assert result.exit_code == 1, result.output
    assert "inserted 2, updated 1, rejected 2" in result.output
    assert "line 3: discount: Enter a number." in result.output
    assert f"line 5: client_birthday: {DATE}" in result.output

    out = tmp_path / "export.csv"
    exported = runner.invoke(jambo_cli, ["loyalty", "export", "--output", str(out)], env=env)
    assert exported.exit_code == 0, exported.output
    assert "exported 2 members" in exported.output
    assert list(csv.reader(out.open(encoding="utf-8"))) == [
        ["loyalty_id", "cardno", "discount", "client_name", "client_birthday", "is_male"],
        ["1", "11", "6.1250", "Ann B", "1970-10-20", "false"],
        ["4", "44", "", "Dan", "1990-02-01", "false"],
    ]
    to_stdout = runner.invoke(jambo_cli, ["loyalty", "export"], env=env)
    assert list(csv.reader(io.StringIO(to_stdout.stdout)))[1][0] == "1"

    again = runner.invoke(jambo_cli, ["loyalty", "import", str(out)], env=env)
    assert again.exit_code == 0, again.output
    assert "inserted 0, updated 2, rejected 0" in again.output

    headless = tmp_path / "headless.csv"
    headless.write_text("id,name\n1,Ann\n", encoding="utf-8")
    refused = runner.invoke(jambo_cli, ["loyalty", "import", str(headless)], env=env)
    assert refused.exit_code == 2
    assert "the header row has no loyalty_id, client_name, client_birthday column" in (
        refused.output
    )
