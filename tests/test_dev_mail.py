"""Development mail (issue 21): without SMTP_HOST each message is kept under DATA_DIR and
`jambo mail` shows it, so a customer's sign-in code is one command away."""

import logging
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from tests.conftest import ORIGIN, create_customer, customer_auth


def jambo_mail(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SMTP_HOST"}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "mail", *args],
        env={**env, "DATA_DIR": str(data_dir), "SMTP_HOST": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
async def unsent(
    settings: Any, tmp_path: Path, client: httpx.AsyncClient
) -> AsyncIterator[httpx.AsyncClient]:
    """The service without SMTP_HOST, its mail kept in a folder of this test's own.
    (`client` is requested for its clean-up of the rows created here.)"""
    dev = settings.model_copy(update={"smtp_host": None, "data_dir": str(tmp_path)})
    application = create_app(dev)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def test_a_customer_signs_in_with_the_code_jambo_mail_prints(
    unsent: httpx.AsyncClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="jambo.mail")
    await create_customer(unsent, email="cynthia@example.org")
    asked = await unsent.post("/api/auth/email-code", json={"email": "cynthia@example.org"})
    assert asked.status_code == 202
    shown = jambo_mail(tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "to cynthia@example.org  Your Jambo sign-in code" in lines[0]
    assert lines[1].startswith("    code: ") and len(lines[1].split()[-1]) == 6
    code = jambo_mail(tmp_path, "--code", "--to", "Cynthia@Example.org")
    assert code.returncode == 0 and code.stdout.strip() == lines[1].split()[-1]
    # SPEC, "Running it": without SMTP_HOST the mail is also written to the log.
    logged = [r.getMessage() for r in caplog.records if r.name == "jambo.mail"]
    assert any(code.stdout.strip() in m and "jambo mail" in m for m in logged), logged
    form = {"grant_type": "urn:jambo:email-code", "email": "cynthia@example.org"}
    token = await unsent.post("/api/auth/token", data={**form, "code": code.stdout.strip()})
    assert token.status_code == 200, token.text
    kept = list((tmp_path / "mail").glob("*.json"))
    assert len(kept) == 1  # readable by its owner only: it holds a credential
    assert stat.S_IMODE(kept[0].stat().st_mode) == 0o600


async def test_jambo_mail_shows_the_deletion_link_newest_first(
    unsent: httpx.AsyncClient, tmp_path: Path
) -> None:
    created = await create_customer(unsent, email="amina@example.org")
    await unsent.post("/api/auth/email-code", json={"email": "amina@example.org"})
    url = f"/api/customer/{created['ulid']}/delete/request"
    sent = await unsent.post(url, json={"origin": ORIGIN}, headers=customer_auth(created["ulid"]))
    assert sent.status_code == 200, sent.text
    shown = jambo_mail(tmp_path, "-n", "1").stdout.splitlines()
    assert "Confirm the deletion of your data" in shown[0]
    assert shown[1].startswith(f"    link: {ORIGIN}/api/customer/")
    assert shown[1].endswith("/delete/confirm")
    assert len(jambo_mail(tmp_path).stdout.splitlines()) == 4  # both, two lines each


def test_nothing_kept_is_said_and_no_code_fails(tmp_path: Path) -> None:
    empty = jambo_mail(tmp_path)
    assert empty.returncode == 0 and empty.stdout == ""
    assert "no mail kept" in empty.stderr
    assert jambo_mail(tmp_path, "--code").returncode == 1


async def test_a_mailbox_that_cannot_be_written_costs_only_the_kept_copy(
    settings: Any, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    """DATA_DIR not writable (a read-only container): the mail goes to the log whole, and the
    request that sent it succeeds as before."""
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    dev = settings.model_copy(update={"smtp_host": None, "data_dir": str(blocked)})
    application = create_app(dev)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            created = await create_customer(c, email="ro@example.org")
            url = f"/api/customer/{created['ulid']}/delete/request"
            sent = await c.post(
                url, json={"origin": ORIGIN}, headers=customer_auth(created["ulid"])
            )
    assert sent.status_code == 200, sent.text
