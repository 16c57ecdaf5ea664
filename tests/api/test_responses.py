"""api.responses.Response puts on the wire exactly the header block Sanic would."""

from __future__ import annotations

import pytest
from sanic.headers import format_http1_response
from sanic.response import HTTPResponse

from api.responses import Response, empty, json, json_bytes

HEADER_SETS = [
    {"ETag": '"1-1"', "X-Request-ID": "0f6d7a3c-1b2e-4c5d-8e9f-0a1b2c3d4e5f"},
    {"Location": "http://h/books/1/", "content-length": 20, "connection": "keep-alive"},
    # Sanic strips CR, LF and NUL from names and values: no header can split the block.
    {"X-Request-ID": "abc\r\nSet-Cookie: evil=1", "X-Nul": "a\x00b", "X-LF": "\nx\n"},
    {"X-Tab": "a\tb", "X-Del": "a\x7fb", "X-Bell": "\x07"},
    {"X-Latin": "café", "X-Surrogate": "a\udcffb", "X-Sep": "a\u2028b"},
    {"X-Many": "v"} | {f"X-{i}": str(i) for i in range(30)},
    {},
]


@pytest.mark.parametrize("headers", HEADER_SETS)
@pytest.mark.parametrize("status", [200, 201, 204, 304, 404])
def test_header_blocks_are_sanics_byte_for_byte(headers: dict[str, object], status: int) -> None:
    ours = Response(b"{}", status=status, content_type="application/json")
    sanics = HTTPResponse(b"{}", status=status, content_type="application/json")
    for response in (ours, sanics):
        for name, value in headers.items():
            response.headers[name] = value
    assert format_http1_response(status, ours.processed_headers) == format_http1_response(
        status, sanics.processed_headers
    )


def test_a_non_ascii_header_name_fails_as_in_sanic() -> None:
    for cls in (Response, HTTPResponse):
        response = cls(b"", headers={"X-Café": "1"})
        with pytest.raises(UnicodeEncodeError):
            list(response.processed_headers)


def test_helpers() -> None:
    made = json({"a": [1, "é"]}, status=201, headers={"ETag": '"x"'})
    assert (made.status, made.body, made.content_type) == (
        201,
        '{"a":[1,"é"]}'.encode(),
        "application/json",
    )
    assert made.headers["ETag"] == '"x"'
    assert json_bytes(b"[]").body == b"[]"
    assert (empty().status, empty().body, empty(304).status) == (204, b"", 304)
