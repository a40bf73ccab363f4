"""Customer API v3: current customer, update form round trips, preferred language."""

from typing import Any

import httpx
import pytest

from tests.conftest import STAFF, auth, create_customer, customer_auth, make_token

ME, FORM, LANG = "/api/v3/customer/", "/api/v3/customer/update/", "/api/v3/customer/language/"
NOT_AUTH = {"detail": "Customer not authenticated"}
V3_KEYS = [
    "customer_id",
    "first_name",
    "last_name",
    "mobile",
    "email",
    "nationality",
    "dob",
    "gender",
    "passport_number",
    "nation_id_number",
    "language",
    "address",
]
FORM_FIELDS = V3_KEYS[1:]
LANGUAGES = ["en", "sw", "fr", "ar", "pt", "es", "de", "zh"]
STORED = (
    "first_name, last_name, email, phone_number, nationality, dob, gender, passport_number,"
    " national_id_number, language, address_line1, address_line2, address_city,"
    " address_state, address_post_code, address_country, version"
)


async def signed_in(client: httpx.AsyncClient, **changes: Any) -> tuple[str, dict[str, str]]:
    customer = await create_customer(client, **changes)
    return customer["ulid"], customer_auth(customer["ulid"])


async def stored(db) -> dict[str, Any]:
    return dict(await db.fetchrow(f"SELECT {STORED} FROM customers ORDER BY id LIMIT 1"))


# --- GET /api/v3/customer/ ---


async def test_me_has_exactly_the_documented_keys(client: httpx.AsyncClient) -> None:
    ulid, headers = await signed_in(client)
    response = await client.get(ME, headers=headers)
    assert response.status_code == 200
    assert list(response.json()) == V3_KEYS
    assert response.json() == {
        "customer_id": ulid,
        "first_name": "Cynthia",
        "last_name": "Norris",
        "mobile": "+254712345678",
        "email": "aaron97@example.org",
        "nationality": "LS",
        "dob": "1912-09-06",
        "gender": None,
        "passport_number": None,
        "nation_id_number": None,
        "language": "en",
        "address": None,
    }


async def test_me_joins_the_non_empty_address_parts(client: httpx.AsyncClient, db) -> None:
    _, headers = await signed_in(client)
    await db.execute(
        "UPDATE customers SET address_line1 = '12 Moi Avenue', address_line2 = '',"
        " address_city = 'Nairobi', address_post_code = '00100', address_country = 'Kenya',"
        " gender = 'female', national_id_number = '12345678'"
    )
    body = (await client.get(ME, headers=headers)).json()
    assert body["address"] == "12 Moi Avenue, Nairobi, 00100, Kenya"
    assert (body["gender"], body["nation_id_number"]) == ("female", "12345678")


@pytest.mark.parametrize(("method", "path"), [("GET", ME), ("GET", FORM), ("POST", FORM)])
async def test_no_token_is_401_customer_not_authenticated(client, db, method, path) -> None:
    await create_customer(client)
    response = await client.request(method, path, json={"first_name": "Hacked"})
    assert response.status_code == 401
    assert response.json() == NOT_AUTH
    assert response.headers["www-authenticate"] == "Bearer"
    assert (await stored(db))["first_name"] == "Cynthia"


@pytest.mark.parametrize(("method", "path"), [("GET", ME), ("GET", FORM), ("POST", FORM)])
async def test_bad_tokens_are_401_invalid_token(client, db, method, path) -> None:
    ulid = (await create_customer(client))["ulid"]
    for token in (
        make_token(ulid, role="customer", exp_delta=-10),
        make_token(ulid, role="customer", aud="elsewhere"),
        make_token(ulid, role="customer", secret="wrong-secret-" + "z" * 40),
        "not.a.jwt",
    ):
        response = await client.request(method, path, json={"first_name": "X"}, headers=auth(token))
        assert response.status_code == 401
        assert response.json() == NOT_AUTH
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert (await stored(db))["first_name"] == "Cynthia"


@pytest.mark.parametrize(("method", "path"), [("GET", ME), ("GET", FORM), ("POST", FORM)])
async def test_staff_token_is_403(client, method, path) -> None:
    await create_customer(client)
    response = await client.request(method, path, json={"first_name": "X"}, headers=STAFF)
    assert response.status_code == 403
    assert response.json() == {"detail": "You do not have permission to perform this action."}


@pytest.mark.parametrize(("method", "path"), [("GET", ME), ("GET", FORM), ("POST", FORM)])
async def test_token_of_a_deleted_customer_is_401(client, method, path) -> None:
    ulid, headers = await signed_in(client)
    assert (await client.delete(f"/api/customer/{ulid}", headers=STAFF)).status_code == 200
    response = await client.request(method, path, json={"first_name": "X"}, headers=headers)
    assert response.status_code == 401
    assert response.json() == NOT_AUTH
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    garbage_sub = customer_auth("not-a-ulid")
    assert (await client.get(ME, headers=garbage_sub)).status_code == 401


# --- the update form ---


async def test_get_form_has_the_schema_and_current_values(client: httpx.AsyncClient) -> None:
    ulid, headers = await signed_in(client)
    response = await client.get(FORM, headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["customer_id", "form", "has_errors"]
    assert (body["customer_id"], body["has_errors"]) == (ulid, False)
    form = body["form"]
    assert list(form) == FORM_FIELDS
    assert form["first_name"] == {
        "type": "string",
        "label": "First name",
        "required": True,
        "max_length": 100,
        "value": "Cynthia",
        "errors": [],
    }
    assert form["email"] == {
        "type": "email",
        "label": "Email address",
        "required": True,
        "max_length": 254,
        "value": "aaron97@example.org",
        "errors": [],
    }
    assert form["mobile"] == {
        "type": "phone",
        "label": "Mobile number",
        "required": False,
        "value": "+254712345678",
        "errors": [],
    }
    assert form["dob"]["type"] == "date" and form["dob"]["value"] == "1912-09-06"
    assert form["nationality"]["type"] == "country" and form["nationality"]["value"] == "LS"
    assert form["gender"]["choices"] == [
        {"value": "female", "label": "Female"},
        {"value": "male", "label": "Male"},
        {"value": "other", "label": "Other"},
        {"value": "prefer_not_to_say", "label": "Prefer not to say"},
    ]
    assert [c["value"] for c in form["language"]["choices"]] == LANGUAGES
    assert form["language"]["choices"][1] == {"value": "sw", "label": "Swahili"}
    assert form["language"]["value"] == "en"
    required = {name for name, entry in form.items() if entry["required"]}
    assert required == {"first_name", "last_name", "email"}
    for name, entry in form.items():
        expected = {"type", "label", "required", "value", "errors"}
        if entry["type"] == "choice":
            expected.add("choices")
        if entry["type"] in ("string", "email"):
            expected.add("max_length")
        assert set(entry) == expected, name


@pytest.mark.parametrize("content", [b"", b"  ", b"{}"])
async def test_empty_post_returns_the_form_and_saves_nothing(client, db, content) -> None:
    _, headers = await signed_in(client)
    got = (await client.get(FORM, headers=headers)).json()
    response = await client.post(
        FORM, content=content, headers={**headers, "content-type": "application/json"}
    )
    assert response.status_code == 200
    assert response.json() == got
    assert (await stored(db))["version"] == 1


async def test_valid_post_saves_and_returns_the_refreshed_form(client, db) -> None:
    ulid, headers = await signed_in(client)
    change = {
        "first_name": " Cyn ",
        "last_name": "Akama",
        "mobile": "0722000111",
        "email": "Cyn@Example.org",
        "nationality": "Kenya",
        "dob": "1985-09-06",
        "gender": "Female",
        "passport_number": "A1234567",
        "nation_id_number": "12345678",
        "language": "SW",
        "address": "12 Moi Avenue, Nairobi",
    }
    response = await client.post(FORM, json=change, headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["customer_id", "form", "has_errors"]
    assert (body["customer_id"], body["has_errors"]) == (ulid, False)
    values = {name: entry["value"] for name, entry in body["form"].items()}
    assert values == {
        "first_name": "Cyn",
        "last_name": "Akama",
        "mobile": "+254722000111",
        "email": "aaron97@example.org",  # the new address waits for its code
        "nationality": "KE",
        "dob": "1985-09-06",
        "gender": "female",
        "passport_number": "A1234567",
        "nation_id_number": "12345678",
        "language": "sw",
        "address": "12 Moi Avenue, Nairobi",
    }
    assert all(entry["errors"] == [] for entry in body["form"].values())
    row = await stored(db)
    assert row["phone_number"] == "+254722000111" and row["national_id_number"] == "12345678"
    assert row["address_line1"] == "12 Moi Avenue, Nairobi" and row["version"] == 2
    me = (await client.get(ME, headers=headers)).json()
    assert {k: me[k] for k in FORM_FIELDS} == values


async def test_partial_post_changes_only_the_fields_sent(client, db) -> None:
    _, headers = await signed_in(client)
    await db.execute("UPDATE customers SET address_line1 = '1 Road', address_city = 'Kisumu'")
    before = await stored(db)
    response = await client.post(FORM, json={"last_name": "Akama"}, headers=headers)
    assert response.status_code == 200 and response.json()["has_errors"] is False
    after = await stored(db)
    assert after == {**before, "last_name": "Akama", "version": 2}


async def test_address_string_replaces_every_address_part(client, db) -> None:
    _, headers = await signed_in(client)
    await db.execute(
        "UPDATE customers SET address_line1 = '1 Road', address_line2 = 'Flat 2',"
        " address_city = 'Kisumu', address_state = 'Nyanza', address_post_code = '40100',"
        " address_country = 'Kenya'"
    )
    response = await client.post(FORM, json={"address": "PO Box 1, Nairobi"}, headers=headers)
    assert response.json()["form"]["address"]["value"] == "PO Box 1, Nairobi"
    row = await stored(db)
    parts = [row[f"address_{p}"] for p in ("line2", "city", "state", "post_code", "country")]
    assert row["address_line1"] == "PO Box 1, Nairobi" and parts == [None] * 5
    cleared = await client.post(FORM, json={"address": ""}, headers=headers)
    assert cleared.json()["form"]["address"]["value"] is None
    assert (await stored(db))["address_line1"] is None


async def test_posting_the_whole_form_back_unchanged_changes_nothing(client, db) -> None:
    _, headers = await signed_in(client)
    await db.execute(
        "UPDATE customers SET address_line1 = '1 Road', address_city = 'Kisumu', gender = 'X'"
    )
    form = (await client.get(FORM, headers=headers)).json()["form"]
    echoed = {name: entry["value"] for name, entry in form.items()}
    response = await client.post(FORM, json=echoed, headers=headers)
    assert response.status_code == 200 and response.json()["has_errors"] is False
    row = await stored(db)
    assert (row["address_line1"], row["address_city"], row["gender"]) == ("1 Road", "Kisumu", "X")
    assert row["version"] == 1
    # The schema entries themselves may be posted back ("the same shape as the form schema").
    form["first_name"]["value"] = "Zed"
    response = await client.post(FORM, json=form, headers=headers)
    assert response.json()["form"]["first_name"]["value"] == "Zed"
    assert (await stored(db))["first_name"] == "Zed"


async def test_invalid_post_saves_nothing_and_reports_every_field(client, db) -> None:
    _, headers = await signed_in(client)
    before = await stored(db)
    change = {
        "first_name": "Valid",
        "email": "not-an-email",
        "mobile": "12",
        "nationality": "Atlantis",
        "dob": "2999-01-01",
        "gender": "robot",
        "language": "xx",
        "passport_number": "P" * 51,
        "last_name": None,
    }
    response = await client.post(FORM, json=change, headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["customer_id", "form", "has_errors"] and body["has_errors"] is True
    form = body["form"]
    errors = {name: entry["errors"] for name, entry in form.items() if entry["errors"]}
    assert errors == {
        "email": ["Enter a valid email address."],
        "mobile": ["Enter a valid phone number."],
        "nationality": ["Enter a valid country: an ISO 3166-1 code or English name."],
        "dob": ["Date of birth cannot be in the future."],
        "gender": ['"robot" is not one of the available choices.'],
        "language": [f"Unsupported language; choose one of: {', '.join(LANGUAGES)}."],
        "passport_number": ["Ensure this field has no more than 50 characters."],
        "last_name": ["This field is required."],
    }
    values = {name: entry["value"] for name, entry in form.items()}
    assert values["first_name"] == "Valid" and values["email"] == "not-an-email"
    assert values["last_name"] is None and values["address"] is None
    assert values["nation_id_number"] is None  # not sent: the current value
    assert await stored(db) == before


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"email": ""}, "email", "This field is required."),
        ({"email": None}, "email", "This field is required."),
        ({"first_name": "  "}, "first_name", "This field is required."),
        ({"first_name": 42}, "first_name", "Not a valid string."),
        ({"first_name": ["A"]}, "first_name", "Not a valid string."),
        ({"last_name": "Nor\x00ris"}, "last_name", "Control characters are not allowed."),
        ({"dob": "06/09/1912"}, "dob", "Enter a valid date in the format YYYY-MM-DD."),
        ({"dob": "1899-12-31"}, "dob", "Date of birth cannot be before 1900-01-01."),
        ({"dob": 19120906}, "dob", "Enter a valid date in the format YYYY-MM-DD."),
        ({"language": {"code": "sw"}}, "language", "Not a valid string."),
        ({"address": {}}, "address", "Not a valid string."),  # found by schemathesis
        (
            {"mobile": "+2547" + "1" * 40},
            "mobile",
            "Ensure this field has no more than 40 characters.",
        ),
    ],
)
async def test_bad_values_are_form_errors(client, db, change, field, message) -> None:
    _, headers = await signed_in(client)
    response = await client.post(FORM, json=change, headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert body["has_errors"] is True
    assert body["form"][field]["errors"] == [message]
    assert (await stored(db))["version"] == 1


@pytest.mark.parametrize(
    "name", ["first_name", "last_name", "email", "passport_number", "nation_id_number", "address"]
)
async def test_max_length_in_the_schema_is_what_the_rules_enforce(client, db, name) -> None:
    _, headers = await signed_in(client)
    limit = (await client.get(FORM, headers=headers)).json()["form"][name]["max_length"]
    fits = "a" * (limit - len("@example.org")) + "@example.org" if name == "email" else "a" * limit
    too_long = "b" + fits
    bad = (await client.post(FORM, json={name: too_long}, headers=headers)).json()
    assert bad["form"][name]["errors"] == [
        f"Ensure this field has no more than {limit} characters."
    ]
    assert (await stored(db))["version"] == 1
    if name != "email":  # a 254-character address is over e-mail's own local-part limit
        good = (await client.post(FORM, json={name: fits}, headers=headers)).json()
        assert good["has_errors"] is False and good["form"][name]["value"] == fits


async def test_unknown_fields_are_form_errors_and_nothing_is_saved(client, db) -> None:
    _, headers = await signed_in(client)
    change = {"first_name": "New", "favourite_colour": "blue", "middle_name": "X"}
    response = await client.post(FORM, json=change, headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["customer_id", "form", "has_errors", "non_field_errors"]
    assert body["has_errors"] is True
    assert body["non_field_errors"] == [
        "Unknown field: 'favourite_colour'.",
        "Unknown field: 'middle_name'.",
    ]
    assert body["form"]["first_name"] == {**body["form"]["first_name"], "value": "New"}
    assert all(entry["errors"] == [] for entry in body["form"].values())
    assert (await stored(db))["first_name"] == "Cynthia"


async def test_a_taken_address_is_never_revealed(client, db, mailbox) -> None:
    """Changing one's address to another customer's answers exactly as for a free one (the
    change is pending); the mail to that address says it is taken, and carries no code."""
    _, headers = await signed_in(client)
    await create_customer(client, email="taken@example.org")
    mailbox.messages.clear()
    taken = await client.post(FORM, json={"email": "TAKEN@example.org"}, headers=headers)
    free = await client.post(FORM, json={"email": "free@example.org"}, headers=headers)
    for response, address in ((taken, "TAKEN@example.org"), (free, "free@example.org")):
        assert response.status_code == 200
        body = response.json()
        assert body["has_errors"] is False
        assert body["form"]["email"]["value"] == "aaron97@example.org"
        assert body["form"]["email"]["pending"] == address
    assert (await stored(db))["email"] == "aaron97@example.org"


async def test_form_encoded_post_is_accepted(client, db) -> None:
    _, headers = await signed_in(client)
    response = await client.post(
        FORM, data={"last_name": "Akama", "gender": "male"}, headers=headers
    )
    assert response.status_code == 200 and response.json()["has_errors"] is False
    row = await stored(db)
    assert (row["last_name"], row["gender"]) == ("Akama", "male")


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b'{"first_name": ', "JSON parse error: the request body is not valid JSON."),
        (b"\xff\xfe", "JSON parse error: the request body is not valid JSON."),
        (b'["first_name"]', "The request body must be a JSON object."),
        (b'"Cynthia"', "The request body must be a JSON object."),
        (b"null", "The request body must be a JSON object."),
    ],
)
async def test_malformed_bodies_are_400_detail(client, db, content, detail) -> None:
    _, headers = await signed_in(client)
    response = await client.post(
        FORM, content=content, headers={**headers, "content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {"detail": detail}
    assert (await stored(db))["version"] == 1


async def test_oversized_body_is_413_detail(client, db) -> None:
    _, headers = await signed_in(client)
    response = await client.post(FORM, json={"first_name": "x" * (1024 * 1024)}, headers=headers)
    assert response.status_code == 413
    assert response.json() == {"detail": "Request body is larger than 1048576 bytes."}


async def test_unmatched_paths_and_methods_use_the_detail_format(client) -> None:
    _, headers = await signed_in(client)
    missing = await client.get("/api/v3/customer/nope/", headers=headers)
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not found."})
    wrong = await client.delete(ME, headers=headers)
    assert (wrong.status_code, wrong.json()) == (405, {"detail": "Method not allowed."})
    put = await client.put(LANG, json={"language": "sw"})
    assert put.status_code == 405
    assert put.json() == {"language": None, "error_message": "Method not allowed."}


# --- preferred language ---


@pytest.mark.parametrize(
    ("accept_language", "expected"),
    [
        (None, "en"),
        ("", "en"),
        ("sw", "sw"),
        ("sw-KE", "sw"),
        ("SW_ke", "sw"),
        ("fr-CH, fr;q=0.9, en;q=0.8, *;q=0.5", "fr"),
        ("de;q=0.5, zh;q=0.9", "zh"),
        ("en;q=0.5, ar", "ar"),
        ("xx, es;q=0.1", "es"),
        ("xx-YY", "en"),
        ("ja, ko;q=0.9", "en"),
        ("*", "en"),
        ("en;q=0, *", "sw"),
        ("pt-BR;q=0.8, de;q=0.7", "pt"),
        ("fr;q=1.5, de;q=0.2", "de"),
        ("fr;q=abc, es", "es"),
        ("fr;q=0, fr-CA", "en"),
        ("zh-Hant-TW", "zh"),
        (";;;,,,  ,q=1", "en"),
        ("de" + ", x" * 5000, "de"),
    ],
)
async def test_anonymous_language_is_negotiated(client, accept_language, expected) -> None:
    headers = {"Accept-Language": accept_language} if accept_language is not None else {}
    response = await client.get(LANG, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"language": expected, "error_message": None}
    assert response.headers["vary"].startswith("Accept-Language, Authorization")


async def test_customer_gets_the_stored_language_whatever_the_browser_says(client, db) -> None:
    _, headers = await signed_in(client)
    await db.execute("UPDATE customers SET language = 'fr'")
    response = await client.get(LANG, headers={**headers, "Accept-Language": "de"})
    assert response.json() == {"language": "fr", "error_message": None}


async def test_customer_post_saves_the_language(client, db) -> None:
    _, headers = await signed_in(client)
    response = await client.post(LANG, json={"language": "SW"}, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"language": "sw"}
    assert (await stored(db))["language"] == "sw"
    got = await client.get(LANG, headers=headers)
    assert got.json() == {"language": "sw", "error_message": None}
    assert (await client.get(ME, headers=headers)).json()["language"] == "sw"


async def test_anonymous_post_echoes_and_saves_nothing(client, db) -> None:
    await create_customer(client)
    response = await client.post(LANG, json={"language": "ar"})
    assert response.status_code == 200
    assert response.json() == {"language": "ar"}
    assert (await stored(db))["language"] == "en"
    form = await client.post(LANG, data={"language": "de"})
    assert form.json() == {"language": "de"}


@pytest.mark.parametrize("as_customer", [False, True])
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"language": "xx"}, f"Unsupported language; choose one of: {', '.join(LANGUAGES)}."),
        ({"language": "sw-KE"}, f"Unsupported language; choose one of: {', '.join(LANGUAGES)}."),
        ({"language": ""}, "A language code is required."),
        ({"language": None}, "A language code is required."),
        ({}, "A language code is required."),
        ({"lang": "sw"}, "A language code is required."),
        ({"language": 7}, "Not a valid string."),
        ({"language": "s\x00w"}, "Control characters are not allowed."),
        ([1], "The request body must be a JSON object."),
    ],
)
async def test_bad_language_posts_are_400(client, db, as_customer, body, message) -> None:
    _, headers = await signed_in(client)
    response = await client.post(LANG, json=body, headers=headers if as_customer else {})
    assert response.status_code == 400
    assert response.json() == {"language": None, "error_message": message}
    assert (await stored(db))["language"] == "en"


async def test_language_errors_for_tokens(client, db) -> None:
    ulid, headers = await signed_in(client)
    for method in ("GET", "POST"):
        staff = await client.request(method, LANG, json={"language": "sw"}, headers=STAFF)
        assert staff.status_code == 403
        assert staff.json() == {
            "language": None,
            "error_message": "Only customers have a preferred language.",
        }
        expired = auth(make_token(ulid, role="customer", exp_delta=-5))
        bad = await client.request(method, LANG, json={"language": "sw"}, headers=expired)
        assert bad.status_code == 401
        assert bad.json() == {"language": None, "error_message": "Customer not authenticated"}
        assert bad.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert (await stored(db))["language"] == "en"
    await client.delete(f"/api/customer/{ulid}", headers=STAFF)
    gone = await client.post(LANG, json={"language": "sw"}, headers=headers)
    assert gone.status_code == 401


async def test_openapi_documents_the_v3_routes_with_examples(client) -> None:
    spec = (await client.get("/openapi.json")).json()
    for path, methods in ((ME, ["get"]), (FORM, ["get", "post"]), (LANG, ["get", "post"])):
        for method in methods:
            operation = spec["paths"][path][method]
            assert operation["summary"] and operation["tags"]
            assert {"200", "401", "403"} <= set(operation["responses"])
    post = spec["paths"][FORM]["post"]
    assert post["requestBody"]["content"]["application/json"]["example"]
    schemas = spec["components"]["schemas"]
    assert set(schemas["CustomerForm"]["example"]["form"]) == set(FORM_FIELDS)
    for method in ("get", "post"):
        ok = spec["paths"][FORM][method]["responses"]["200"]["content"]["application/json"]
        assert list(ok["example"]["form"]) == FORM_FIELDS  # in display order
    assert schemas["CustomerV3"]["example"]["address"]
