"""Room to allocate, checked where running out would crash the worker instead of raising.

orjson (3.13) does not check its own allocations: out of address space, ``orjson.loads``
and ``orjson.dumps`` crash the process (SIGSEGV in a memcpy) where the standard library
raises MemoryError. Under ``prlimit --as``, a body that exhausted memory took the worker
down with every request it held, after writes had committed, their answers never sent.
So where allocations can fail at all (an address-space limit, RLIMIT_AS, or strict
overcommit, ``vm.overcommit_memory=2``; otherwise Linux hands out memory and its OOM
killer, not a MemoryError, ends a process that uses too much), room is reserved and given
back before the work: an anonymous mapping of that size, never touched, costs two system
calls (some 9 µs) and no memory, and fails exactly when the address space or commit limit
is short. Without a limit none of this runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import mmap
import resource
from typing import Final

# A request needs at least this much room to be started (``api.app``): its answer's JSON
# (a bulk of 1,000 books is some 0.5 MB, which orjson turns into a few MB), its rows.
REQUEST_ROOM: Final = 16 << 20
# orjson.loads of N bytes took up to 14 N of address space (its yyjson document, then the
# strings), a body of nested empty arrays 37 N (one list object each): measured under
# RLIMIT_AS, the parse crashing below those figures.
PARSE_ROOM_PER_BYTE: Final = 40
PARSE_ROOM: Final = 1 << 20


def _strict_overcommit() -> bool:
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/sys/vm/overcommit_memory") as fh:
            return fh.read().strip() == "2"
    return False


_STRICT: Final = _strict_overcommit()
_M_ARENA_MAX: Final = -8  # glibc's malloc.h


_LIMITED: Final = _STRICT or resource.getrlimit(resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY


def limited() -> bool:
    """Whether an allocation of this process can fail (and so must be checked for): as the
    process started (a limit set later by ``prlimit --pid`` is not seen)."""
    return _LIMITED


def contain() -> None:
    """Where allocations can fail: one C heap (glibc's arena) for every thread.

    glibc answers a failed allocation by retrying in another arena, making one if it can:
    each new arena reserves 64 MiB of address space, kept for the life of the process.
    Under RLIMIT_AS, one body too large to fit took the room of every request after it
    (503 for good); the environment's MALLOC_ARENA_MAX=1 does the same as this.
    """
    if limited():
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).mallopt(_M_ARENA_MAX, 1)


def _fits(nbytes: int) -> bool:
    try:
        # Private: a shared mapping costs a file in the kernel (18 µs against 9).
        mmap.mmap(-1, max(nbytes, mmap.PAGESIZE), flags=mmap.MAP_PRIVATE).close()
    except (OSError, MemoryError, OverflowError, ValueError):
        return False
    return True


def _give_back() -> None:
    """Return what the process holds but does not use: garbage in cycles, and the free
    memory of C's heap (glibc keeps it mapped after a large request has freed it)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


def room(nbytes: int) -> bool:
    """Whether ``nbytes`` more could be allocated now (after giving back what is free)."""
    if not limited() or _fits(nbytes):
        return True
    _give_back()
    return _fits(nbytes)


def room_to_parse(nbytes: int) -> bool:
    """Whether orjson can parse a document of ``nbytes`` without running out."""
    return room(PARSE_ROOM_PER_BYTE * nbytes + PARSE_ROOM)
