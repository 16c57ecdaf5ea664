"""The soak's command line and settings: ``python -m benchmarks.soak --help``.

Importing this needs nothing from the bench extra, so ``--help`` and a missing package
are answered in one line."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

RESULTS_DIR: Final = Path(__file__).resolve().parent.parent / "results"
INSTALL: Final = "install the bench extra: pip install -e '.[bench]'"
WORKERS: Final = 2


class SoakError(Exception):
    """A problem a person can fix: printed as one line."""


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)  # noqa: T201


def _number(kind: Callable[[str], Any], text: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = _number(kind, text)
        if not value > 0 or (isinstance(value, float) and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{text!r}: give a positive number")
        return value

    return parse


def _not_negative(text: str) -> float:
    value: float = _number(float, text)
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text!r}: give 0 (no kills) or a positive number")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.soak",
        description="Soak the real server (WORKERS=2) on 127.0.0.1 with mixed reads and "
        "writes, kill -9 a worker at intervals, stop it with SIGTERM, then check the "
        "database holds every acknowledged write. Results: benchmarks/results/"
        "soak_<n>.{json,md,png}.",
    )
    p.add_argument(
        "--minutes", type=_positive(float), default=10.0, help="load duration (default 10)"
    )
    p.add_argument(
        "--kill-every",
        type=_not_negative,
        default=60.0,
        metavar="SECONDS",
        help="kill -9 one worker (taking turns) this often; 0: never (default 60)",
    )
    p.add_argument(
        "--pause-seconds",
        type=_not_negative,
        default=20.0,
        metavar="SECONDS",
        help="every other fault pauses a worker (SIGSTOP) this long instead of killing it; "
        "0: kills only (default 20)",
    )
    p.add_argument(
        "--clients", type=_positive(int), default=16, help="concurrent clients (default 16)"
    )
    p.add_argument(
        "--database-url",
        help="a PostgreSQL database to soak (its book table is REPLACED by the seed); "
        "default: a fresh SQLite file under benchmarks/results/tmp/",
    )
    p.add_argument(
        "--rows", type=_positive(int), default=10_000, help="rows seeded first (default 10000)"
    )
    p.add_argument(
        "--timeout",
        type=_positive(float),
        default=10.0,
        help="seconds a request may take before it counts as a timeout (default 10)",
    )
    p.add_argument(
        "--stop-timeout",
        type=_positive(float),
        default=30.0,
        help="seconds the server gets to exit after SIGTERM before it is killed (default 30)",
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the rows and the requests")
    p.add_argument(
        "--out",
        type=Path,
        help="path prefix of the results (default benchmarks/results/soak_<n>)",
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        default=RESULTS_DIR / "tmp",
        help="where the SQLite file and the server log go (default benchmarks/results/tmp)",
    )
    p.add_argument("--no-plot", dest="plot", action="store_false", help="skip the PNG")
    return p


@dataclass(frozen=True)
class Config:
    minutes: float
    kill_every: float
    pause_seconds: float
    clients: int
    database_url: str | None
    rows: int
    timeout: float
    stop_timeout: float
    seed: int
    out: Path | None
    work_dir: Path
    plot: bool

    @property
    def seconds(self) -> float:
        return self.minutes * 60

    def check(self) -> None:
        if self.database_url is not None:
            scheme = urlsplit(self.database_url).scheme
            if scheme not in ("postgres", "postgresql", "psycopg", "asyncpg"):
                raise SoakError(
                    f"--database-url {self.database_url!r}: give a postgres:// URL "
                    "(leave it out to soak a fresh SQLite file)"
                )

    def public(self) -> dict[str, Any]:
        out = {
            "minutes": self.minutes,
            "kill_every_s": self.kill_every,
            "pause_s": self.pause_seconds,
            "clients": self.clients,
            "workers": WORKERS,
            "rows": self.rows,
            "timeout_s": self.timeout,
            "stop_timeout_s": self.stop_timeout,
            "seed": self.seed,
            "database": "sqlite",
        }
        if self.database_url:
            parts = urlsplit(self.database_url)
            out["database"] = f"{parts.scheme}://{parts.hostname or ''}{parts.path}"
        return out
