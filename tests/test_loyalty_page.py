"""The loyalty register's browsable page is safe for shop staff (issue 21): nothing posts an
existing member by accident, a refused form comes back as typed with each field's error beside
it, and deleting asks first."""

import html
import re
from typing import Any

import httpx

from tests.conftest import STAFF
from tests.test_loyalty import BASE, MARIYA, URL, post, stored

PAGE = {**STAFF, "Accept": "text/html"}
MEMBER_10 = {
    "loyalty_id": "10",
    "cardno": "332",
    "discount": "5",
    "client_name": "Customer #1",
    "client_birthday": "1970-10-20",
    "is_male": True,
}


def _textarea(page: str) -> tuple[str, str]:
    """(its placeholder, its content) of the raw-data form's text box."""
    found = re.search(
        r'<textarea name="_content" placeholder="([^"]*)"[^>]*>(.*?)</textarea>', page, re.S
    )
    assert found, page
    return html.unescape(found.group(1)), html.unescape(found.group(2))


async def test_the_raw_form_as_shipped_changes_nothing(client: httpx.AsyncClient, db: Any) -> None:
    await post(client, MEMBER_10)
    before = await stored(db)
    page = (await client.get(f"{URL}?format=api", headers=STAFF)).text
    placeholder, content = _textarea(page)
    assert content == ""  # the seed's sample is a placeholder, never sent
    assert '"loyalty_id": "10"' in placeholder
    # What a browser sends for that form when POST is clicked as it stands.
    sent = {"_content_type": "application/json", "_content": content}
    answer = await client.post(f"{URL}?format=api", data=sent, headers=STAFF)
    assert answer.status_code == 400
    assert await stored(db) == before
    assert "loyalty_id: This field is required." in answer.text


async def test_a_refused_form_comes_back_as_typed_with_errors_beside_fields(
    client: httpx.AsyncClient, db: Any
) -> None:
    typed = {
        "loyalty_id": "7",
        "cardno": "<b>77</b>",
        "discount": "12.34567",
        "client_name": "Ann",
        "client_birthday": "2000-01-31",
        "is_male": "false",
    }
    answer = await client.post(f"{URL}?format=api", data=typed, headers=STAFF)
    assert answer.status_code == 400
    page = answer.text
    assert 'name="loyalty_id" value="7"' in page
    assert 'name="cardno" value="&lt;b&gt;77&lt;/b&gt;"' in page  # escaped, as typed
    assert 'name="client_name" value="Ann"' in page
    assert 'name="client_birthday" value="2000-01-31"' in page
    assert '<option value="false" selected>female</option>' in page
    discount = re.search(
        r'name="discount" value="12.34567"[^>]*aria-invalid="true"[^>]*>'
        r'<ul class="errors" id="discount-errors" role="alert"><li>([^<]*)</li>',
        page,
    )
    assert discount, page
    assert discount.group(1) == "Ensure that there are no more than 4 decimal places."
    assert await stored(db) == []
    # The raw form of a refused bulk keeps its text, each item's errors listed under it.
    bulk = (
        '[{"loyalty_id": "1", "client_name": "A", "client_birthday": "1990-01-01"},'
        ' {"loyalty_id": "2", "discount": "x", "client_name": "B", "client_birthday": "1990"}]'
    )
    refused = await client.post(
        f"{URL}?format=api",
        data={"_content_type": "application/json", "_content": bulk},
        headers=STAFF,
    )
    assert refused.status_code == 400
    assert _textarea(refused.text)[1] == bulk
    assert (
        '<ul class="errors" id="raw-errors" role="alert"><li>item 2: discount: Enter a number.'
        in refused.text
    )
    assert await stored(db) == []


async def test_a_refused_replace_keeps_its_values_and_its_member(client: httpx.AsyncClient) -> None:
    await post(client, MARIYA)
    form = {
        "_method": "PUT",
        "loyalty_id": "3",
        "client_name": "M",
        "client_birthday": "1982-11-17",
        "discount": "lots",
    }
    answer = await client.post(f"{URL}3/?format=api", data=form, headers=STAFF)
    assert answer.status_code == 400
    assert f'action="{BASE}3/?format=api"' in answer.text  # still this member's page
    assert 'name="client_name" value="M"' in answer.text
    assert '<ul class="errors" id="discount-errors" role="alert"><li>Enter a number.' in answer.text


async def test_delete_asks_first(client: httpx.AsyncClient) -> None:
    await post(client, MARIYA)
    page = (await client.get(f"{URL}3/", headers=PAGE)).text
    assert 'data-confirm="Delete member 3? This cannot be undone."' in page
    assert "window.confirm(f.dataset.confirm)" in page
