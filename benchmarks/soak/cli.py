"""``python -m benchmarks.soak``: read the options, check the bench extra is there, soak,
write the results and print the summary. Exit 0, 1 when the database does not hold what
was acknowledged, 2 for a problem a person can fix, 130 when interrupted."""

from __future__ import annotations

import os
from collections.abc import Sequence

from benchmarks.soak.options import INSTALL, RESULTS_DIR, Config, SoakError, parser, say

try:
    import httpx  # noqa: F401
    import psutil  # noqa: F401
except ImportError as exc:  # reported by main() in one line
    MISSING: str | None = exc.name
else:
    MISSING = None


def main(argv: Sequence[str] | None = None) -> int:
    config = Config(**vars(parser().parse_args(argv)))
    if MISSING is not None:
        say(f"soak: {MISSING} is not installed; {INSTALL}")
        return 2
    if config.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            say(f"soak: matplotlib is not installed (or pass --no-plot); {INSTALL}")
            return 2
    # Only now: these import the bench extra.
    from benchmarks.runner import next_run_path
    from benchmarks.soak.report import summary_rows, table, write
    from benchmarks.soak.run import soak

    try:
        config.check()
        prefix = config.out or next_run_path(RESULTS_DIR, "soak")
        for folder in (prefix.parent, config.work_dir):
            folder.mkdir(parents=True, exist_ok=True)
            if not os.access(folder, os.W_OK):
                raise SoakError(f"{folder} is not writable; choose another --out/--work-dir")
        doc = soak(config)
        paths = write(doc, prefix, config.plot)
    except SoakError as exc:
        say(f"soak: {exc}")
        return 2
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        say(f"soak: {exc.strerror or exc}{where}; check --out and --work-dir")
        return 2
    except KeyboardInterrupt:
        say("soak: interrupted; the server was stopped, no results written")
        return 130
    print("\n".join(table(["", "value"], summary_rows(doc))))  # noqa: T201
    print(f"results: {', '.join(str(p) for p in paths)}")  # noqa: T201
    if not doc["verify"]["ok"]:
        say("soak: the database does not hold what was acknowledged (see 'verify' in the JSON)")
        return 1
    return 0
