"""The Dockerfile's own recipe, replayed without Docker so that it cannot rot unnoticed.

The build stage's COPY and RUN lines run as written in a fresh virtualenv (paths under
/src, /opt/venv and /data moved into a temporary folder); then the final stage's ENV,
ENTRYPOINT and CMD start the server from a folder holding no source, so every import comes
from what ``pip install`` put in the virtualenv; its HEALTHCHECK command must pass, and
SIGTERM must reach the server itself (PID 1 in the container) and stop it cleanly.
Also: the final stage's static promises (non-root, slim base), .dockerignore keeping every
COPY source, and the entrypoint's WORKERS from a cgroup CPU quota.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from server_process import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT_SCRIPT = ROOT / "deploy" / "entrypoint.sh"
# The container paths the replay knows how to move into a temporary folder.
MAPPED = ("/src", "/opt/venv", "/data")


@dataclass
class Stage:
    base: str
    name: str | None
    steps: list[tuple[str, str]] = field(default_factory=list)

    def last(self, keyword: str) -> str | None:
        found = [arg for kw, arg in self.steps if kw == keyword]
        return found[-1] if found else None


def parse(text: str) -> list[Stage]:
    """Stages of a Dockerfile, each a list of (KEYWORD, argument) with continuations joined."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), rest)
            parts = base.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name))
        else:
            stages[-1].steps.append((keyword, rest))
    return stages


def env_pairs(arg: str) -> list[tuple[str, str]]:
    return [tuple(token.split("=", 1)) for token in shlex.split(arg)]  # type: ignore[misc]


class Replay:
    """Container paths and variables mapped onto a temporary folder."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp

    def host(self, path: str) -> Path:
        assert path.startswith(MAPPED), f"the replay does not know the container path {path}"
        return self.tmp / path.lstrip("/")

    def rewrite(self, text: str) -> str:
        pattern = "|".join(re.escape(p) for p in MAPPED)
        return re.sub(rf"(?<![\w/])({pattern})(?=/|\b|$)", lambda m: str(self.host(m[1])), text)

    def set_env(self, env: dict[str, str], arg: str) -> None:
        for name, value in env_pairs(arg):
            value = re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), value)
            env[name] = self.rewrite(value)

    def copy(self, arg: str, workdir: Path) -> None:
        *sources, dest = shlex.split(arg)
        target = Path(self.rewrite(dest)) if dest.startswith("/") else workdir / dest
        for source in sources:
            src = ROOT / source
            into = target / src.name if dest.endswith("/") or len(sources) > 1 else target
            if src.is_dir():
                shutil.copytree(
                    src,
                    into,
                    dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                )
            else:
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, into)


def _stages() -> tuple[Stage, Stage]:
    stages = parse(DOCKERFILE.read_text())
    assert len(stages) >= 2, "a multi-stage build"
    return stages[0], stages[-1]


def _pattern(rule: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(rule):
        if rule.startswith("**", i):
            out += ".*"
            i += 2
        elif rule[i] == "*":
            out += "[^/]*"
            i += 1
        elif rule[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(rule[i])
            i += 1
    return re.compile(out + "$")


def dockerignored(relative: str, rules: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for rule in rules:
        negate = rule.startswith("!")
        pattern = _pattern(rule.lstrip("!").strip("/"))
        if any(pattern.match(p) for p in prefixes):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_every_copy_source() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    sources: list[Path] = []
    for stage in parse(DOCKERFILE.read_text()):
        for keyword, arg in stage.steps:
            if keyword == "COPY" and not arg.startswith("--from"):
                sources += [ROOT / s for s in shlex.split(arg)[:-1]]
    files = [f for s in sources for f in ([s] if s.is_file() else sorted(s.rglob("*.py")))]
    assert files
    assert [
        str(f.relative_to(ROOT)) for f in files if dockerignored(str(f.relative_to(ROOT)), rules)
    ] == []
    # ... and keeps out what the image must not carry.
    for heavy in (
        ".git/HEAD",
        ".venv/bin/python",
        "tests/conftest.py",
        "data/x.sqlite3",
        "benchmarks/README.md",
        "api/__pycache__/app.cpython-311.pyc",
    ):
        assert dockerignored(heavy, rules), heavy


def test_final_stage_is_slim_non_root_and_checks_healthz() -> None:
    _, final = _stages()
    assert "slim" in final.base
    user = final.last("USER")
    assert user is not None and user.split(":")[0] not in ("root", "0")
    health = final.last("HEALTHCHECK")
    assert health is not None and "/healthz" in health
    assert "curl" not in health and "wget" not in health  # not in the slim image
    # Exec form, so the server (not a shell) is the process that gets SIGTERM.
    for keyword in ("ENTRYPOINT", "CMD"):
        assert isinstance(json.loads(final.last(keyword) or "null"), list), keyword
    assert final.last("STOPSIGNAL") in (None, "SIGTERM")


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({}, "nproc"),
        ({"cpu.max": "max 100000"}, "nproc"),
        ({"cpu.max": "100000 100000"}, "1"),
        ({"cpu.max": "50000 100000"}, "1"),
        ({"cpu.max": "150000 100000"}, "1"),
        ({"cpu.max": "6400000 100000"}, "nproc"),
        ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, "nproc"),
        ({"cpu/cpu.cfs_quota_us": "100000", "cpu/cpu.cfs_period_us": "100000"}, "1"),
    ],
)
def test_entrypoint_sets_workers_from_the_cgroup_cpu_quota(
    tmp_path: Path, files: dict[str, str], expected: str
) -> None:
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(content + "\n")
    env = {"PATH": os.environ["PATH"], "BOOKSHELF_CGROUP_ROOT": str(tmp_path)}
    run = subprocess.run(
        ["sh", str(ENTRYPOINT_SCRIPT), "sh", "-c", "echo $WORKERS"],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert run.returncode == 0, run.stderr
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    assert run.stdout.strip() == (nproc if expected == "nproc" else expected)


def test_entrypoint_keeps_an_explicit_workers(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "WORKERS": "3", "BOOKSHELF_CGROUP_ROOT": str(tmp_path)}
    run = subprocess.run(
        ["sh", str(ENTRYPOINT_SCRIPT), "sh", "-c", "echo $WORKERS"],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert run.stdout.strip() == "3"


def _wait_healthy(
    process: subprocess.Popen[bytes], check: str, env: dict[str, str], log: Path, workers: int
) -> None:
    """Until the HEALTHCHECK passes and every worker is up.

    Every worker, not just the first: a SIGTERM while a worker is still starting leaves
    Sanic's main process waiting for ever (reported; Docker would SIGKILL it after the
    stop grace period).
    """
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server exited:\n{log.read_text()}"
        if (
            log.read_text(errors="replace").count("Worker ready") >= workers
            and subprocess.run(["sh", "-c", check], env=env, capture_output=True).returncode == 0
        ):
            return
        time.sleep(0.25)
    raise AssertionError(f"HEALTHCHECK never passed:\n{log.read_text()}")


@pytest.mark.server
def test_the_image_recipe_installs_and_serves(tmp_path: Path) -> None:
    build, final = _stages()
    replay = Replay(tmp_path)

    # Build stage: COPY and RUN as written, with the machine's pip configuration.
    env = dict(os.environ)
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
        env.pop(name, None)
    env["PATH"] = os.pathsep.join(
        p for p in env["PATH"].split(os.pathsep) if not p.startswith(str(ROOT))
    )
    workdir = tmp_path
    ran = 0
    for keyword, arg in build.steps:
        if keyword == "ENV":
            replay.set_env(env, arg)
        elif keyword == "WORKDIR":
            workdir = replay.host(arg)
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            replay.copy(arg, workdir)
        elif keyword == "RUN":
            command = replay.rewrite(arg)
            run = subprocess.run(
                ["sh", "-c", command],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert run.returncode == 0, f"RUN {arg}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
            ran += 1
        else:
            assert keyword in ("ARG", "LABEL"), f"the replay does not know {keyword} {arg}"
    assert ran >= 1

    # Final stage: a container's environment is the image's ENV and nothing else.
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
    }
    entrypoint: list[str] = []
    command: list[str] = []
    health = ""
    for keyword, arg in final.steps:
        if keyword == "ENV":
            replay.set_env(env, arg)
        elif keyword == "WORKDIR":
            workdir = replay.host(arg)
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY" and not arg.startswith("--from"):
            replay.copy(arg, workdir)
        elif keyword == "ENTRYPOINT":
            entrypoint = json.loads(arg)
        elif keyword == "CMD":
            command = json.loads(arg)
        elif keyword == "HEALTHCHECK":
            health = replay.rewrite(arg.split(" CMD ", 1)[1])
    # The image listens on 0.0.0.0:8000; here on loopback and a free port.
    port = free_port()
    env.update({"HOST": "127.0.0.1", "PORT": str(port)})
    assert not list(workdir.glob("*.py")), "no source where the server starts"

    # WORKERS as the entrypoint sets it from this machine's CPUs (and cgroup quota, if any).
    workers = subprocess.run(
        [*entrypoint, "sh", "-c", "echo $WORKERS"], env=env, capture_output=True, text=True
    ).stdout.strip()
    assert workers.isdigit() and int(workers) >= 1, workers

    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [*entrypoint, *command],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_healthy(process, health, env, log, int(workers))
        # exec: the process Docker would signal is the server itself, not a shell.
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        assert Path(cmdline[0].decode()).name.startswith("python"), cmdline
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz").status_code == 200
        books = httpx.get(f"{base}/books/")
        assert books.status_code == 200, books.text  # the migrations came with the wheel
        assert books.json()["count"] == 0
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    assert subprocess.run(["sh", "-c", health], env=env, capture_output=True).returncode != 0
