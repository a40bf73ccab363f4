"""A real browser (Debian's headless Chromium) against the live service over HTTP.

Skipped where Chromium is not installed; `.ci/run` installs it.
"""

import shutil
from collections.abc import Iterator

import pytest

from tests.conftest import STAFF, make_token, start_service, stop_service

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")


async def _browser(playwright):  # type: ignore[no-untyped-def]
    return await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)


async def _page_shows(page, needle: str) -> str:  # type: ignore[no-untyped-def]
    """Poll the page's text: it replaces itself with each answer (document.write)."""
    for _ in range(80):
        text: str = await page.inner_text("body")
        if needle in text:
            return text
        await page.wait_for_timeout(250)
    raise AssertionError(f"{needle!r} never shown; page: {text[:600]}")


async def test_swagger_ui_renders_all_four_contracts(live_server: str) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await _browser(p)
        page = await browser.new_page()
        await page.goto(f"{live_server}/docs")
        await page.wait_for_selector(".opblock-tag", timeout=20_000)
        tags = " | ".join(await page.locator(".opblock-tag").all_inner_texts())
        for tag in (
            "Jambo customers",
            "Customer Management API v1",
            "Loyalty register",
            "Customer API v3",
        ):
            assert tag in tags, tags
        paths = await page.locator(".opblock-summary-path").all_inner_texts()
        flat = {p.replace("\u200b", "").strip() for p in paths}
        for path in (
            "/api/customers",
            "/api/v1/customers",
            "/api/v1/loyalty/",
            "/api/v3/customer/",
            "/api/v3/customer/language/",
        ):
            assert path in flat, sorted(flat)
        await browser.close()


async def test_loyalty_browsable_page_posts_a_member(live_server: str, client, db) -> None:
    """(`client` is requested for its clean-up of what the browser wrote.)"""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await _browser(p)
        page = await browser.new_page()
        await page.goto(f"{live_server}/api/v1/loyalty/.api")
        await page.fill("#token", make_token())
        await page.click("#token-form button")
        await _page_shows(page, "HTTP 200 OK")  # the page re-fetched itself with the token
        form = page.locator("form.item", has_text="Add or replace a member")
        await form.wait_for(timeout=15_000)
        await form.locator("input[name=loyalty_id]").fill("B-42")
        await form.locator("input[name=client_name]").fill("<script>alert(1)</script> Mariya")
        await form.locator("input[name=client_birthday]").fill("1982-11-17")
        await form.locator("button[type=submit]").click()
        text = await _page_shows(page, '"inserted": 1')
        assert "HTTP 201 Created" in text
        await page.goto(f"{live_server}/api/v1/loyalty/B-42/.api")
        await page.wait_for_selector("pre", timeout=15_000)
        shown = await page.inner_text("pre")
        assert "<script>alert(1)</script> Mariya" in shown  # shown as text, not run
        await browser.close()
    row = await db.fetchrow("SELECT client_name, client_birthday FROM loyalty_members")
    assert row["client_name"] == "<script>alert(1)</script> Mariya"
    assert str(row["client_birthday"]) == "1982-11-17"


@pytest.fixture(params=["", "/jambo"], ids=["root", "under-ROOT_PATH"])
def docs_server(
    request: pytest.FixtureRequest, live_server: str, database_url: str
) -> Iterator[str]:
    """The live service's docs, at the root and behind a gateway prefix."""
    if not request.param:
        yield f"{live_server}/docs"
        return
    proc, base = start_service(database_url, env={"ROOT_PATH": request.param})
    yield f"{base}{request.param}/docs"
    stop_service(proc)


async def test_swagger_ui_signs_in_with_client_credentials_and_tries_a_route(
    docs_server: str, app, client
) -> None:
    """Authorize with a client id and secret (no token copied by hand), then "Try it out"."""
    from playwright.async_api import async_playwright

    client_id, secret = await app.state.services.auth.create_client(
        "swagger", ["customers:read", "loyalty:read"]
    )
    async with async_playwright() as p:
        browser = await _browser(p)
        page = await browser.new_page()
        await page.goto(docs_server)
        await page.click("button.authorize", timeout=20_000)
        dialog = page.locator(".modal-ux")
        await dialog.locator("#client_id_clientCredentials").fill(client_id)
        await dialog.locator("#client_secret_clientCredentials").fill(secret)
        await dialog.get_by_role("button", name="Apply given OAuth2 credentials").click()
        await dialog.get_by_text("Authorized", exact=True).wait_for(timeout=15_000)
        await dialog.locator("button.btn-done").last.click()
        operation = page.locator("#operations-Customer_Management_API_v1-v1_list_customers")
        await operation.locator(".opblock-summary").click()
        await operation.get_by_role("button", name="Try it out").click()
        await operation.get_by_role("button", name="Execute").click()
        status = operation.locator(".live-responses-table .response .response-col_status")
        await status.first.wait_for(timeout=15_000)
        assert (await status.first.inner_text()).strip() == "200"
        body = await operation.locator(".live-responses-table .microlight").first.inner_text()
        assert '"success": true' in body
        await browser.close()


async def test_swagger_ui_token_form_sends_only_what_was_typed(
    live_server: str, app, client
) -> None:
    """The token endpoint's "Try it out" is a form of empty fields, one per name: a client id
    and secret typed there get a token (no sample `scope=string` refused as invalid_scope)."""
    from playwright.async_api import async_playwright

    client_id, secret = await app.state.services.auth.create_client("swagger", ["loyalty:read"])
    async with async_playwright() as p:
        browser = await _browser(p)
        page = await browser.new_page()
        await page.goto(f"{live_server}/docs")
        operation = page.locator("#operations-Auth-auth_token")
        await operation.locator(".opblock-summary").click(timeout=20_000)
        await operation.get_by_role("button", name="Try it out").click()
        fields = operation.locator(".opblock-section-request-body input[type=text]")
        assert set(await fields.evaluate_all("(xs) => xs.map((x) => x.value)")) == {""}
        await operation.locator("tr[data-property-name=client_id] input[type=text]").fill(client_id)
        await operation.locator("tr[data-property-name=client_secret] input[type=text]").fill(
            secret
        )
        await operation.get_by_role("button", name="Execute").click()
        status = operation.locator(".live-responses-table .response .response-col_status")
        await status.first.wait_for(timeout=15_000)
        body = await operation.locator(".live-responses-table .microlight").first.inner_text()
        assert (await status.first.inner_text()).strip() == "200", body
        assert '"scope": "loyalty:read"' in body
        await browser.close()


MEMBER_10 = {
    "loyalty_id": "10",
    "cardno": "332",
    "discount": "5",
    "client_name": "Customer #1",
    "client_birthday": "1970-10-20",
    "is_male": True,
}
MEMBERS = (
    "SELECT loyalty_id, cardno, discount, client_name, client_birthday, is_male"
    " FROM loyalty_members"
)


async def _signed_in_page(browser, url: str):  # type: ignore[no-untyped-def]
    page = await browser.new_page()
    await page.goto(url)
    await page.fill("#token", make_token())
    await page.click("#token-form button")
    await _page_shows(page, "HTTP 200 OK")
    return page


async def test_the_loyalty_raw_form_posted_as_shipped_changes_no_member(
    live_server: str, client, db
) -> None:
    """The raw-data form once held the seed's sample (member "10"): one click replaced that
    member's card, discount and gender. Now it holds nothing to send."""
    from playwright.async_api import async_playwright

    created = await client.post("/api/v1/loyalty/", json=MEMBER_10, headers=STAFF)
    assert created.status_code == 201
    before = await db.fetch(MEMBERS)
    async with async_playwright() as p:
        browser = await _browser(p)
        page = await _signed_in_page(browser, f"{live_server}/api/v1/loyalty/.api")
        raw = page.locator("form.item", has_text="Raw JSON")
        assert await raw.locator("textarea").input_value() == ""
        await raw.locator("button[type=submit]").click()
        text = await _page_shows(page, "HTTP 400 Bad Request")
        assert "loyalty_id: This field is required." in text
        await browser.close()
    assert await db.fetch(MEMBERS) == before


async def test_deleting_from_the_loyalty_page_asks_first(live_server: str, client, db) -> None:
    from playwright.async_api import async_playwright

    await client.post("/api/v1/loyalty/", json=MEMBER_10, headers=STAFF)
    asked: list[str] = []
    async with async_playwright() as p:
        browser = await _browser(p)
        page = await _signed_in_page(browser, f"{live_server}/api/v1/loyalty/10/.api")

        async def answer(dialog, accept: bool) -> None:  # type: ignore[no-untyped-def]
            asked.append(dialog.message)
            await (dialog.accept() if accept else dialog.dismiss())

        page.once("dialog", lambda d: answer(d, False))
        await page.get_by_role("button", name="DELETE this member").click()
        await page.wait_for_timeout(500)
        assert await db.fetchval("SELECT count(*) FROM loyalty_members") == 1
        page.once("dialog", lambda d: answer(d, True))
        await page.get_by_role("button", name="DELETE this member").click()
        await _page_shows(page, "Loyalty List")
        await browser.close()
    assert asked == ["Delete member 10? This cannot be undone."] * 2
    assert await db.fetchval("SELECT count(*) FROM loyalty_members") == 0
