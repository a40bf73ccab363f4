"""Schemathesis against the live service's own /openapi.json, with a staff token.

Every check runs: no 5xx, only documented status codes, content types, headers and bodies
that match the documented schemas, schema-valid requests accepted and invalid ones refused,
auth enforced, Allow on 405s, deleted resources gone. tests/schemathesis.toml names, per
operation, the answers a documented rule gives to schema-valid data that JSON Schema cannot
describe (a phone number that does not exist, a stale ETag), each with its reason.
"""

import subprocess
import sys
from pathlib import Path

from tests.conftest import create_customer, make_token

CONFIG = Path(__file__).with_name("schemathesis.toml")


def run_schemathesis(base: str, token: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(CONFIG),
            "run",
            f"{base}/openapi.json",
            "-H",
            f"Authorization: Bearer {token}",
            "--max-examples",
            "25",
            "--seed",
            "20261123",
            # One worker: with two, Hypothesis describes filters from two threads at once and
            # CPython 3.11's ast.parse is not thread-safe ("AST constructor recursion depth
            # mismatch": a runtime error in the report, now and then). It costs about a second.
            "--workers",
            "1",
            "--request-timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_openapi_document_holds_for_the_live_service(live_server: str, client) -> None:
    """(`client` is requested for its clean-up of what the run wrote.)"""
    result = run_schemathesis(live_server, make_token())
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


async def test_the_document_holds_for_a_customer_token(live_server: str, client) -> None:
    """The self-service routes (v3, PUT /api/customers, the deletion request) answer staff
    tokens with 403 only: a second run, as a customer, exercises them."""
    created = await create_customer(client, email="fuzzed@example.org")
    result = run_schemathesis(live_server, make_token(created["ulid"], role="customer"))
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
