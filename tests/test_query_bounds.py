"""Query input is bounded by what can match: longer terms, more values or more characters in
all are a 400 in the contract's format, before the database is asked."""

import httpx

from tests.conftest import STAFF

V1 = "/api/v1/customers"
LOYALTY = "/api/v1/loyalty/"


async def test_a_loyalty_search_longer_than_any_field_is_refused(client: httpx.AsyncClient) -> None:
    refused = await client.get(LOYALTY, params={"search": "a" * 201}, headers=STAFF)
    assert refused.status_code == 400
    assert refused.json() == {"search": ["Ensure this field has no more than 200 characters."]}
    page = await client.get(LOYALTY, params={"search": "a" * 201, "format": "api"}, headers=STAFF)
    assert page.status_code == 400 and "no more than 200 characters" in page.text
    assert (await client.get(LOYALTY, params={"search": "a" * 200}, headers=STAFF)).json() == {
        "count": 0,
        "next": None,
        "previous": None,
        "results": [],
    }


async def test_v1_filters_are_bounded(client: httpx.AsyncClient) -> None:
    def errors(response: httpx.Response) -> list[str]:
        assert response.status_code == 400, response.text
        body = response.json()
        assert (body["success"], body["status"], body["data"]["method"]) == (False, 400, "GET")
        return list(body["data"]["error"])

    long_name = await client.get(V1, params={"lastName": "x" * 101}, headers=STAFF)
    assert errors(long_name) == ["'lastName' must be between 1 and 30 characters"]
    long_code = await client.get(V1, params={"address.postCode": "1" * 21}, headers=STAFF)
    assert errors(long_code) == ["'address.postCode' must be at most 20 characters"]
    many = await client.get(V1, params={"address.city": ",".join(["a"] * 21)}, headers=STAFF)
    assert errors(many) == ["'address.city' must list at most 20 values"]
    params = {"address.streetLine1": ",".join(["s" * 199] * 10), "address.city": "y" * 100}
    too_much = await client.get(V1, params=params, headers=STAFF)
    assert errors(too_much) == ["'filters' are 2099 characters in all; at most 2000"]
    # Just within every bound: answered (nothing matches).
    within = {"address.city": ",".join(["c" * 90] * 20), "lastName": "n" * 100}
    answered = await client.get(V1, params=within, headers=STAFF)
    assert answered.status_code == 200, answered.text
    assert answered.json()["data"]["totalElements"] == 0
