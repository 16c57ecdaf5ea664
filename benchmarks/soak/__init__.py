"""A bounded soak of the real server: ``python -m benchmarks.soak --help``.

Starts ``python main.py serve`` with ``WORKERS=2`` on 127.0.0.1 (a free port) on a freshly
seeded SQLite file (or a given PostgreSQL database), runs a mixed load of reads and
acknowledged writes for ``--minutes``, SIGKILLs one worker every ``--kill-every`` seconds
(taking turns), samples every process's RSS each second, stops the server with SIGTERM
while the load goes on, and then reads the database directly to check that every
acknowledged write is stored as it was answered.

Writes are made so that each has one possible outcome: a client writes only books it
created itself, one request at a time, and stops writing to a book once a write to it went
unanswered (a timeout, a dropped connection, a 5xx: its outcome is unknown). So the stored
state of each book is known exactly, or is one of two states.

Results: ``benchmarks/results/soak_<n>.json``, ``.md`` (summary and per-minute tables)
and ``.png`` (RSS per process, requests/s, 5xx and errors over time, kills marked).
"""

from __future__ import annotations

from benchmarks.soak.cli import main

__all__ = ["main"]
