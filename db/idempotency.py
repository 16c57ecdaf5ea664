"""``Idempotency-Key``: a write run at most once per key, its first answer given again.

A request with a key runs in two steps (``Backend.once``):

1. **Claim** the key in a statement of its own, committed at once: ``INSERT … ON
   CONFLICT DO NOTHING`` of (token digest, key, the request's fingerprint, the time).
   When the row is already there, it decides: its outcome is stored → that outcome is
   the answer (another fingerprint: ``IdempotencyMismatchError``, 422); no outcome and the
   claim younger than LEASE → ``IdempotencyInProgressError`` (409); no outcome and older
   (its request's worker died, or its outcome was never known and it did not commit) →
   taken over by an ``UPDATE … WHERE claimed_at = <the time read>``, which one claimant
   only can win. The database decides, so this holds across workers and instances.
2. **Write** and store the answer in one transaction (``Backend.write_transaction``): the
   ``UPDATE`` that stores it names the claim's time, so a claim taken over meanwhile
   stores nothing and the write is rolled back (409).

A write that fails knowing nothing was stored (401, 404, 412, storage full, a statement
refused) releases the claim, so the retry runs again; a write whose outcome is unknown
leaves the claim to its lease: the retry then replays the answer if the transaction
committed, or runs if it did not. Rows are kept at least RETENTION and pruned, a bounded
batch at a time, at most once per PRUNE_EVERY in a process, before a claim.

Where the write's transaction excludes every other writer from its start (SQLite's
``BEGIN IMMEDIATE``: ``Backend.one_writer``), both steps are one transaction: the claim
is made inside it, so a retry waits for the first request's commit and gets its answer
(no 409 but for a claim another server left), and the claim and the answer commit
together or not at all (no release, no lease after an unknown outcome, one commit: with
``synchronous=FULL`` a keyed create kept 0.89 of the throughput of one without a key,
against 0.70 in two steps).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from db.errors import IdempotencyInProgressError, IdempotencyMismatchError, OutcomeUnknownError

# A claim without an outcome is the first request's for this long; then another may take
# it over. Longer than a write's transaction takes, short enough that a retry after an
# unknown outcome does not wait long (409 says how long, in Retry-After).
LEASE: Final = 30.0
# Keys and outcomes are kept at least this long (the contract's 24 h).
RETENTION: Final = 24 * 3600.0
PRUNE_EVERY: Final = 60.0
PRUNE_BATCH: Final = 1000

Fetch = Callable[[str, Sequence[Any]], Awaitable[Sequence[Any]]]
Transaction = Callable[[], contextlib.AbstractAsyncContextManager[Fetch]]

_CLAIM: Final = (
    "INSERT INTO idempotency_key (scope, key, fingerprint, claimed_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (scope, key) DO NOTHING RETURNING claimed_at"
)
_READ: Final = (
    "SELECT fingerprint, claimed_at, status, headers, body FROM idempotency_key"
    " WHERE scope = ? AND key = ?"
)
# A stale claim (no outcome past its lease), or any row past RETENTION, started again.
_TAKE_OVER: Final = (
    "UPDATE idempotency_key SET fingerprint = ?, claimed_at = ?, status = NULL,"
    " headers = NULL, body = NULL WHERE scope = ? AND key = ? AND claimed_at = ?"
    " RETURNING claimed_at"
)
_STORE: Final = (
    "UPDATE idempotency_key SET status = ?, headers = ?, body = ?"
    " WHERE scope = ? AND key = ? AND claimed_at = ? AND status IS NULL RETURNING status"
)
_RELEASE: Final = (
    "DELETE FROM idempotency_key WHERE scope = ? AND key = ? AND claimed_at = ?"
    " AND status IS NULL"
)
_PRUNE: Final = (
    "DELETE FROM idempotency_key WHERE (scope, key) IN (SELECT scope, key"
    " FROM idempotency_key WHERE claimed_at < ? LIMIT ?)"
)


def _now_ms() -> int:
    return int(time.time() * 1000)


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What identifies a request for its key: its method, path and body's bytes."""
    digest = hashlib.sha256(f"{method} {path}\n".encode())
    digest.update(body)
    return digest.hexdigest()


@dataclass(frozen=True)
class Once:
    """A request with an Idempotency-Key: its token's digest (the key's scope), the key,
    and the request's fingerprint."""

    scope: str
    key: str
    fingerprint: str


@dataclass(frozen=True)
class Outcome:
    """A request's answer as stored and given again: status, headers, body bytes."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class Claim:
    once: Once
    claimed_at: int


class Pruner:
    """When this process last pruned the expired keys (one bounded statement a minute)."""

    __slots__ = ("next_at",)

    def __init__(self) -> None:
        self.next_at = 0.0

    async def maybe(self, fetch: Fetch) -> None:
        now = time.monotonic()
        if now < self.next_at:
            return
        self.next_at = now + PRUNE_EVERY
        await prune(fetch)


async def prune(fetch: Fetch, *, now_ms: int | None = None) -> None:
    """Delete up to PRUNE_BATCH keys claimed more than RETENTION ago."""
    now_ms = _now_ms() if now_ms is None else now_ms
    await fetch(_PRUNE, [now_ms - int(RETENTION * 1000), PRUNE_BATCH])


async def claim(fetch: Fetch, once: Once) -> Claim | Outcome:
    """Step 1: the key claimed for this request, or the stored outcome to give again.

    IdempotencyMismatchError for another request's key, IdempotencyInProgressError while
    its first request is running.
    """
    for _ in range(5):  # a row released or taken over between two statements: again
        now = _now_ms()
        rows = await fetch(_CLAIM, [once.scope, once.key, once.fingerprint, now])
        if rows:
            return Claim(once, now)
        rows = await fetch(_READ, [once.scope, once.key])
        if not rows:
            continue
        row = rows[0]
        claimed_at = int(row["claimed_at"])
        expired = claimed_at < now - RETENTION * 1000
        if not expired:
            if row["fingerprint"] != once.fingerprint:
                raise IdempotencyMismatchError()
            if row["status"] is not None:
                headers = orjson.loads(row["headers"]) if row["headers"] else {}
                return Outcome(int(row["status"]), headers, bytes(row["body"] or b""))
            left = claimed_at + LEASE * 1000 - now
            if left > 0:
                raise IdempotencyInProgressError(max(1, int(-(-left // 1000))))
        taken = await fetch(
            _TAKE_OVER, [once.fingerprint, now, once.scope, once.key, claimed_at]
        )
        if taken:
            return Claim(once, now)
    raise IdempotencyInProgressError(1)


def store(claim: Claim, outcome: Outcome) -> tuple[str, list[Any]]:
    """Step 2's statement that stores the outcome (in the write's transaction); it
    returns no row when the claim is no longer this request's."""
    once = claim.once
    headers = orjson.dumps(outcome.headers).decode()
    return _STORE, [
        outcome.status,
        headers,
        outcome.body,
        once.scope,
        once.key,
        claim.claimed_at,
    ]


async def release(fetch: Fetch, claim: Claim) -> None:
    """The write stored nothing: the key is free for the retry to run."""
    once = claim.once
    await fetch(_RELEASE, [once.scope, once.key, claim.claimed_at])


_pruner = Pruner()


async def run(
    fetch: Fetch,
    transaction: Transaction,
    once: Once,
    work: Callable[[Fetch], Awaitable[Outcome]],
    *,
    one_writer: bool = False,
) -> Outcome:
    """Both steps (the module's docstring): ``work`` runs its statements on the fetch of
    a ``transaction()`` and returns the outcome, stored in that same transaction; or the
    outcome the key's first request stored is returned without running ``work``.

    ``one_writer``: the transaction excludes every other writer from its start (SQLite's
    ``BEGIN IMMEDIATE``, in every process), so the claim is made inside it: a request
    with the same key cannot see this one in flight; it waits for the write lock and
    then finds the stored answer. The claim and the answer commit together or not at
    all: nothing to release, no lease to wait for after an unknown outcome, one commit.
    """
    await _pruner.maybe(fetch)
    if one_writer:
        async with transaction() as in_transaction:
            claimed = await claim(in_transaction, once)
            if isinstance(claimed, Outcome):
                return claimed
            outcome = await work(in_transaction)
            await in_transaction(*store(claimed, outcome))
        return outcome
    claimed = await claim(fetch, once)
    if isinstance(claimed, Outcome):
        return claimed
    try:
        async with transaction() as in_transaction:
            outcome = await work(in_transaction)
            if not await in_transaction(*store(claimed, outcome)):
                # Taken over after its lease: the request that took it runs it.
                raise IdempotencyInProgressError(1)
    except OutcomeUnknownError:
        raise  # the claim stays until its lease ends: the retry finds out
    except BaseException:
        with contextlib.suppress(Exception):
            await release(fetch, claimed)
        raise
    return outcome
