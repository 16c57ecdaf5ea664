"""Group commit: a write is acknowledged once its commit is on disk, with one
``fdatasync`` of the write-ahead log for all the commits made while the last one ran.

At ``synchronous=FULL`` SQLite syncs the log inside each commit, and a worker's commits
run one at a time on its connection: a one-worker server took 243 creates/s against 534
at NORMAL, 319 PATCHes/s against 1,080 (``python -m benchmarks.synchronous``). The
server's connections commit at NORMAL instead (the frames written to the log, not
synced) and each write, before its 2xx is sent, awaits ``WalSync.sync()``: an
``fdatasync`` of the log that started after its commit, which also covers every commit
made before it started, this worker's or another's (a sync is of the file, whoever wrote
to it). The guarantee is FULL's: no 2xx before the commit's frames are on disk; frames
the log no longer holds were checkpointed into the database file, which SQLite syncs
before it reuses or deletes the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os


class WalSync:
    """Syncs of one database's write-ahead log, each shared by every write that waits
    for it; a sync that fails raises OSError to all of them."""

    def __init__(self, path: str) -> None:
        self.path = f"{path}-wal"
        self._fd: int | None = None
        self._ident: tuple[int, int] | None = None
        self._next: asyncio.Future[None] | None = None  # the sync to start next
        self._running = False

    async def sync(self) -> None:
        """Return once every commit made before this call is on disk."""
        waited = self._next
        if waited is None:
            waited = self._next = asyncio.get_running_loop().create_future()
            # Retrieved here, so that one nobody awaits any more (its requests cancelled)
            # is not logged as never retrieved.
            waited.add_done_callback(lambda f: f.cancelled() or f.exception())
            if not self._running:
                self._start()
        await asyncio.shield(waited)

    def _start(self) -> None:
        done, self._next = self._next, None
        assert done is not None
        self._running = True

        def finished(task: asyncio.Future[None]) -> None:
            self._running = False
            error = task.exception()
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(None)
            if self._next is not None:  # writes that committed while this sync ran
                self._start()

        asyncio.ensure_future(asyncio.to_thread(self._fdatasync)).add_done_callback(finished)

    def _fdatasync(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return  # no log: every commit is in the database file, synced at checkpoint
        if (st.st_dev, st.st_ino) != self._ident:
            self.close()
            self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            found = os.fstat(self._fd)
            self._ident = (found.st_dev, found.st_ino)
        assert self._fd is not None
        os.fdatasync(self._fd)
        # A sync that began before the file system failed can return success for a journal
        # transaction the failure then discarded (ext4 after an error, errors=remount-ro:
        # 3 acknowledged writes of 736 lost in 10 runs without this). Changing the log's
        # times afterwards fails once the file system has failed: the writes are then not
        # acknowledged.
        os.utime(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd, self._ident = None, None
