"""Request heads on a raw socket: an oversized head is 431, and the framing a proxy could
read the other way (whitespace before a colon, a folded field) is 400 and the connection
closes, so nothing after it is answered as a second request (RFC 9110, RFC 9112)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
from server_process import Server, running_server

from api.protocol import MALFORMED_FIELD

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("framing")) as running:
        yield running


def _exchange(server: Server, raw: bytes) -> bytes:
    """Send ``raw``, then read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(raw)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        length = int(headers.get("content-length", "0"))
        out.append((int(lines[0].split()[1]), headers, rest[:length]))
        data = rest[length:]
    return out


@pytest.mark.parametrize("size", [9 * 1024, 100 * 1024])
def test_an_oversized_head_is_431(server: Server, size: int) -> None:
    raw = b"GET /books/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n"
    ((status, headers, body),) = _responses(_exchange(server, raw))
    assert status == 431
    assert headers["content-type"] == "application/json"
    assert "x-request-id" in headers
    assert "header is too large" in json.loads(body)["detail"]


SMUGGLED = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize(
    "field",
    [
        b"Transfer-Encoding : chunked",
        b"Transfer-Encoding\t: chunked",
        b"X-Pad: 1\r\n Transfer-Encoding: chunked",  # obs-fold (a continuation line)
        b"Transfer-Encoding:\r\n\tchunked",  # a line without a colon: Sanic's own 400
    ],
)
def test_ambiguous_framing_is_400_and_closes(server: Server, field: bytes) -> None:
    body = b"0\r\n\r\n" + SMUGGLED
    raw = (
        b"POST /books/ HTTP/1.1\r\nHost: x\r\n"
        + field
        + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body
    )
    responses = _responses(_exchange(server, raw))
    assert [status for status, _, _ in responses] == [400]
    _, headers, payload = responses[0]
    assert headers["connection"] == "close"
    assert json.loads(payload)["detail"] in (MALFORMED_FIELD, "Bad Request")


def test_a_colon_in_a_value_and_tabs_in_values_are_fine(server: Server) -> None:
    raw = (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nUser-Agent: a :b\tc\r\n"
        b"X-Note:\tvalue\r\nConnection: close\r\n\r\n"
    )
    assert [status for status, _, _ in _responses(_exchange(server, raw))] == [200]
