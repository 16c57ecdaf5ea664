"""Real faults for the database tests: a small tmpfs to fill or make read-only, a user held
to file modes, a valid SQLite file to break, an ext4 file system that fails."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

# Without these capabilities root is held to files' modes as any other user is.
NO_DAC = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search")


def without_dac_override() -> tuple[str, ...]:
    """The command prefix that holds this user to file modes (nothing for a non-root)."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: root ignores file modes")
    return NO_DAC


def mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here (needs root and CAP_SYS_ADMIN): {done.stderr.strip()}")


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "4m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` for the block; skips where one cannot be."""
    path.mkdir(exist_ok=True)
    mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """``folder`` bind-mounted read-only over itself for the block: files already open
    stay writable, as they would when an operator remounts a disk."""
    mount("--bind", str(folder), str(folder))
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@dataclass
class Ext4:
    """An ext4 file system in an image file, loop-mounted with ``errors=remount-ro``."""

    image: Path
    mount_point: Path

    def mount(self) -> None:
        mount("-o", "loop,errors=remount-ro", str(self.image), str(self.mount_point))

    def fail(self) -> None:
        """A file system error: ext4 aborts its journal and goes read-only, as
        ``errors=remount-ro`` has it after an error it finds on its own (the kernel logs
        "EXT4-fs error ... Remounting filesystem read-only"). Data not yet on the disk
        (written, not fsynced) is never written: it is lost, as it would be after a
        disk error. (``trigger_fs_error`` needs a debug kernel; device-mapper's error
        target needs dm, which this kind of machine lacks: ext4's ``abort`` mount option
        is ext4's own way to raise the error.)"""
        subprocess.run(["mount", "-o", "remount,abort", str(self.mount_point)], check=True)

    def remount(self) -> None:
        """Unmounted and mounted again: the journal replayed, what reached the disk read."""
        subprocess.run(["umount", str(self.mount_point)], check=True)
        self.mount()


@contextlib.contextmanager
def ext4(folder: Path, size: int = 64 << 20) -> Iterator[Ext4]:
    """An ext4 image of ``size`` bytes in ``folder``, mounted at ``folder/mnt`` with
    ``errors=remount-ro`` for the block; skips where loop devices cannot be mounted."""
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("mkfs.ext4 is not installed (e2fsprogs)")
    image = folder / "ext4.img"
    with open(image, "wb") as fh:
        fh.truncate(size)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    disk = Ext4(image, folder / "mnt")
    disk.mount_point.mkdir(exist_ok=True)
    disk.mount()
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk.mount_point)], check=False)


def fill(folder: Path) -> Path:
    """Write a file into ``folder`` until its file system is full."""
    filler = folder / "filler"
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as fh:
        with contextlib.suppress(OSError):
            while True:
                fh.write(chunk)
    with open(filler, "ab", buffering=0) as fh:  # the last few bytes too
        with contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * 512)
    return filler


def a_database(path: Path) -> Path:
    """A valid SQLite file (in WAL mode, as bookshelf keeps it) with one table."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
    return path


ROWS = 3000


def with_books(path: Path) -> list[int]:
    """ROWS books added to a migrated file, all in the file itself (checkpointed); the
    pages of the book table's leaves other than the last (the one new books go to)."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executemany(
            "INSERT INTO book (title, author, published_date, price_cents, version) "
            "VALUES (?, ?, '2020-01-01', 100, 1)",
            [(f"title {i} " * 8, f"author {i % 7}") for i in range(ROWS)],
        )
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        leaves = [
            row[0]
            for row in conn.execute(
                "SELECT pageno FROM dbstat WHERE name = 'book' AND pagetype = 'leaf'"
                " ORDER BY pageno"
            )
        ]
    return leaves[:-1]


def corrupt(path: Path, pages: list[int], page_size: int = 4096) -> None:
    """Random bytes over ``pages`` (numbered from 1) of the file, on disk."""
    with open(path, "r+b") as fh:
        for page in pages:
            fh.seek((page - 1) * page_size)
            fh.write(os.urandom(page_size))
        fh.flush()
        os.fsync(fh.fileno())


PROXY = """
import asyncio, sys

async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()

async def handle(reader, writer):
    try:
        up_reader, up_writer = await asyncio.open_connection(sys.argv[2], int(sys.argv[3]))
    except OSError:
        writer.close()
        return
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    print("listening", flush=True)
    await server.serve_forever()

asyncio.run(main())
"""


@contextlib.contextmanager
def tcp_proxy(port: int, host: str, target: int) -> Iterator[subprocess.Popen[str]]:
    """A process forwarding 127.0.0.1:``port`` to ``host``:``target``; killing it cuts
    every connection through it at once, as a server or network going away does."""
    process = subprocess.Popen(
        [sys.executable, "-c", PROXY, str(port), host, str(target)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "listening\n"
        yield process
    finally:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


@contextlib.contextmanager
def frozen(proxy: subprocess.Popen[str]) -> Iterator[None]:
    """``proxy`` stopped (SIGSTOP) for the block: the kernel still completes its TCP
    handshakes, but nothing answers, on new connections or on those already open; a
    database server that freezes, or a network that drops its packets, looks so."""
    proxy.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        proxy.send_signal(signal.SIGCONT)


def proxied(url: str, port: int) -> str:
    """``url`` with its host and port replaced by the proxy's, 127.0.0.1:``port``."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))
