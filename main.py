"""bookshelf's command line: serve the API, apply migrations, manage API tokens."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from api.settings import Settings, SettingsError


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        print(f"bookshelf: configuration error: {exc}", file=sys.stderr)  # noqa: T201
        raise SystemExit(2) from None


def _fresh_metrics_dir() -> str | None:
    """Give the workers' metrics one empty folder, so old counts never leak into new ones.
    Returns the folder if it was made here (PROMETHEUS_MULTIPROC_DIR unset): the caller
    removes it once the server has stopped.

    Each worker's app finds the folder in PROMETHEUS_MULTIPROC_DIR when it is built
    (``api.observability.Metrics``), so this runs before any worker is spawned; the
    workers inherit the variable.
    """
    import shutil
    import tempfile

    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, exist_ok=True)
        return None
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="bookshelf-metrics-")
    return path


def serve(settings: Settings) -> int:
    """Serve until stopped: 0 after a stop signal; 1 when the workers could not be kept
    running, a stop had to kill them, or the worker manager's state process died
    (api.supervisor), so that the instance's supervisor restarts it."""
    from api.logs import capture_process

    capture_process(settings.log_level)  # before anything else can log or warn
    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    from api.app import create_app
    from api.protocol import DeadlineHttpProtocol
    from api.stop_signals import StopLatch, note_state_process, state_process_lost
    from api.supervisor import Supervisor

    if settings.migrate_on_start:
        # Migrate once here, before any worker exists, so workers start at once and
        # never queue on the migration lock; other instances still take that lock.
        from db import migrate

        asyncio.run(migrate(settings.database_url, connect_timeout=settings.db_connect_timeout))
        settings = dataclasses.replace(settings, migrate_on_start=False)
    # From here a stop signal is remembered until the worker manager can act on it, and
    # Sanic's state process starts with SIGTERM ignored (StopLatch says why).
    latch = StopLatch().install()
    made = _fresh_metrics_dir()
    loader = AppLoader(factory=partial(create_app, settings, freeze_gc=True, capture_logs=True))
    app = loader.load()
    app.prepare(
        protocol=DeadlineHttpProtocol,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        access_log=settings.access_log,
        motd=False,
    )
    app.main_process_start(lambda app: note_state_process())
    app.main_process_start(lambda app: latch.release())
    supervisors: list[Supervisor] = []
    app.main_process_ready(lambda app: supervisors.append(Supervisor.start_for(app, latch)))
    try:
        Sanic.serve(primary=app, app_loader=loader)
    except (OSError, EOFError):
        if not state_process_lost():
            raise
        for supervisor in supervisors:
            supervisor.stop_after_state_loss()
        return 1
    finally:
        if made:
            import shutil

            shutil.rmtree(made, ignore_errors=True)
    return 1 if any(s.failed for s in supervisors) else 0


def _with_db(settings: Settings, job: Callable[[Any], Awaitable[Any]]) -> Any:
    """``job(backend)``'s result, with the database open (and migrated) around it."""
    from db import close_db, open_db

    async def run() -> Any:
        backend = await open_db(
            settings.database_url,
            connect_timeout=settings.db_connect_timeout,
            pool_min=1,
            pool_max=2,
        )
        try:
            return await job(backend)
        finally:
            await close_db()

    return asyncio.run(run())


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from db import migrate

    asyncio.run(migrate(settings.database_url, connect_timeout=settings.db_connect_timeout))
    print(f"migrations applied to {settings.database_url}")  # noqa: T201
    return 0


def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    from db import tokens
    from db.errors import NotFoundError

    if args.action == "create":
        try:
            key = _with_db(settings, lambda _: tokens.create_token(name=args.name))
        except tokens.TokenExistsError:
            print(
                f"bookshelf: a token named {args.name!r} exists already; "  # noqa: T201
                "pick another name or revoke it first",
                file=sys.stderr,
            )
            return 1
        except tokens.TokenNameError as exc:
            print(f"bookshelf: {exc}", file=sys.stderr)  # noqa: T201
            return 2
        print(key)  # noqa: T201
        print(
            f"token {args.name!r} created; the key above is shown only once",  # noqa: T201
            file=sys.stderr,
        )
        return 0
    if args.action == "list":
        rows = _with_db(settings, lambda _: tokens.list_tokens())
        print(f"{'NAME':<24} {'CREATED':<25} {'LAST USED':<25} STATUS")  # noqa: T201
        for t in rows:
            last = t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else "never"
            status = "revoked" if t.revoked_at else "active"
            print(
                f"{t.name:<24} {t.created_at.isoformat(timespec='seconds'):<25} "  # noqa: T201
                f"{last:<25} {status}"
            )
        return 0
    try:
        _with_db(settings, lambda _: tokens.revoke_token(name=args.name))
    except NotFoundError:
        print(
            f"bookshelf: no token named {args.name!r}; see `python main.py token list`",  # noqa: T201
            file=sys.stderr,
        )
        return 1
    print(f"token {args.name!r} revoked")  # noqa: T201
    return 0


def cmd_seed(settings: Settings, args: argparse.Namespace) -> int:
    from db import seed

    if args.count < 0:
        print("bookshelf: --count must not be negative", file=sys.stderr)  # noqa: T201
        return 2
    tty = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        last = done >= total
        print(
            f"{chr(13) if tty else ''}seeding: {done:,}/{total:,} rows"  # noqa: T201
            + ("; indexing" if last else ""),
            end="\n" if last or not tty else "",
            file=sys.stderr,
            flush=True,
        )

    async def job(backend: Any) -> tuple[seed.SeedReport, tuple[int, int, int | None]]:
        report = await seed.seed_books(
            backend, count=args.count, seed=args.seed, replace=args.replace, progress=progress
        )
        return report, await backend.check_counts()

    report, (rows, counted, indexed) = _with_db(settings, job)
    ids = f"ids {report.first_id}-{report.last_id}" if report.inserted else "no rows"
    print(
        f"seeded {report.inserted:,} books ({ids}, seed {args.seed}) in "  # noqa: T201
        f"{report.seconds:.1f} s; the table holds {rows:,} rows, book_count says {counted:,}"
        + ("" if indexed is None else f", the search index {indexed:,}")
    )
    if counted != rows or indexed not in (None, rows):
        print(
            "bookshelf: book_count or the search index disagrees with the table",  # noqa: T201
            file=sys.stderr,
        )
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="serve the API (the default); configured by environment")
    sub.add_parser("migrate", help="apply pending database migrations")
    token = sub.add_parser("token", help="manage API tokens")
    token_sub = token.add_subparsers(dest="action", required=True)
    token_sub.add_parser("create", help="create a token and print its key once").add_argument(
        "name"
    )
    token_sub.add_parser("list", help="list tokens (never their keys)")
    token_sub.add_parser("revoke", help="revoke a token at once").add_argument("name")
    seeding = sub.add_parser("seed", help="insert N deterministic books (benchmarks, demos)")
    seeding.add_argument("--count", type=int, required=True, help="how many books to insert")
    seeding.add_argument("--seed", type=int, default=1, help="the same seed gives the same books")
    seeding.add_argument("--replace", action="store_true", help="empty the table first (ids 1..N)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = _settings()
    try:
        return _command(args, settings)
    except Exception as exc:
        # A database that cannot be used (not SQLite, read-only, down, wrong password) is
        # a person's to fix: one line and status 2, as for a bad setting; a bug still
        # shows its traceback.
        from db.preflight import describe

        line = describe(exc, settings.database_url)
        if line is None:
            raise
        print(f"bookshelf: database error: {line}", file=sys.stderr)  # noqa: T201
        return 2


def _command(args: argparse.Namespace, settings: Settings) -> int:
    if args.command in (None, "serve"):
        from db import prepare

        prepare(settings.database_url, settings.db_check)  # here, not in each worker's start-up
        return serve(settings)
    if args.command == "migrate":
        return cmd_migrate(settings, args)
    if args.command == "token":
        return cmd_token(settings, args)
    if args.command == "seed":
        return cmd_seed(settings, args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
