"""CI pre-flight: PostgreSQL (TEST_DATABASE_URL) and Redis (TEST_REDIS_URL) must answer.

Exits non-zero with one line naming the server that does not, so CI fails loudly instead
of the suite skipping the tests that need them.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from urllib.parse import unquote, urlsplit

TIMEOUT = 5.0


async def _postgres(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=TIMEOUT)
    try:
        await conn.fetchval("SELECT 1")
    finally:
        await conn.close()


def _redis(url: str) -> None:
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 6379)
    with socket.create_connection(address, TIMEOUT) as s:
        s.settimeout(TIMEOUT)
        if parts.password:
            user = unquote(parts.username or "default")
            s.sendall(f"AUTH {user} {unquote(parts.password)}\r\n".encode())
            if not s.recv(64).startswith(b"+OK"):
                raise ConnectionError("AUTH refused")
        s.sendall(b"PING\r\n")
        reply = s.recv(64)
        if not reply.startswith(b"+PONG"):
            raise ConnectionError(f"PING answered {reply!r}")


def _shown(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def main() -> int:
    pg_url = os.environ.get("TEST_DATABASE_URL", "")
    redis_url = os.environ.get("TEST_REDIS_URL", "")
    for name, url, check in (
        ("PostgreSQL", pg_url, lambda: asyncio.run(_postgres(pg_url))),
        ("Redis", redis_url, lambda: _redis(redis_url)),
    ):
        if not url:
            print(f"ci: {name}: its TEST_*_URL is not set", file=sys.stderr)  # noqa: T201
            return 2
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - any failure is the one line below
            why = f"{type(exc).__name__}: {exc}".splitlines()[0]
            line = f"ci: {name} at {_shown(url)} does not answer ({why})"
            print(line, file=sys.stderr)  # noqa: T201
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
