"""Property-based: arbitrary JSON bodies and query strings never get a 5xx."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import httpx
from helpers import LIST_PARAMETERS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PARAMS = [*LIST_PARAMETERS, "other"]
FIELD_NAMES = ["title", "author", "published_date", "price", "id", "extra"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
interesting_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            " ",
            "0",
            "-1",
            "1e999",
            "NaN",
            "12.345",
            "2023-02-30",
            "-price,title",
            "id,-id",
            "%",
            "_",
            "\x00",
            "9" * 30,
            "Ã©",
            "title,",
            ",",
            "eyJ9",
        ]
    ),
)
book_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({}, optional=dict.fromkeys(FIELD_NAMES, json_values | interesting_text)),
)
query_strings = st.lists(st.tuples(st.sampled_from(PARAMS), interesting_text), max_size=5)
common = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


@common
@given(body=book_bodies, method=st.sampled_from(["POST", "PUT", "PATCH"]))
async def test_write_bodies_never_5xx(
    client: httpx.AsyncClient, auth: dict[str, str], body: Any, method: str
) -> None:
    path = "/books/" if method == "POST" else "/books/1/"
    response = await client.request(
        method,
        path,
        content=_json_bytes(body),
        headers={**auth, "Content-Type": "application/json"},
    )
    assert response.status_code < 500, (body, response.text)
    assert response.headers["content-type"] == "application/json"


@common
@given(pairs=query_strings)
async def test_list_parameters_never_5xx(
    client: httpx.AsyncClient, pairs: list[tuple[str, str]]
) -> None:
    response = await client.get(f"/books/?{urlencode(pairs)}")
    assert response.status_code in (200, 400), (pairs, response.text)
    if response.status_code == 400:
        assert response.json(), pairs
