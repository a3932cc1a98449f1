"""What the project's local servers (Gremlin Server, the S3 endpoint) share: jars fetched once with
Maven, and a background process known by its pid file and stopped by wait-then-kill."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Sequence

from matcher.runtime.errors import MatcherError


def java_env() -> dict[str, str]:
    """The environment with JAVA_HOME pointing at a JDK 17 when none is set (as for Spark)."""
    from matcher.runtime.session import _ensure_java_17

    _ensure_java_17()
    return dict(os.environ)


def maven_fetch(pom: Path, lib: Path, what: str, error: type[MatcherError]) -> Path:
    """Copy the dependencies ``pom`` names into ``lib`` with ``mvn``, unless a previous fetch completed;
    a missing ``mvn`` or a failed download raises ``error`` on one line."""
    marker = lib / ".complete"
    if marker.exists():
        return lib
    lib.mkdir(parents=True, exist_ok=True)
    command = ["mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies", f"-DoutputDirectory={lib}",
               "-DincludeScope=runtime"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=java_env(), timeout=900)
    except FileNotFoundError:
        raise error(f"mvn not found: install Maven to fetch {what}") from None
    if done.returncode != 0:
        reason = (done.stdout + done.stderr).strip().splitlines()
        raise error(f"{pom}: mvn failed ({reason[-1] if reason else done.returncode})")
    marker.write_text("ok\n", encoding="utf-8")
    return lib


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a child of ours that ended is reaped)."""
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


class BackgroundProcess:
    """A server process started in its own session, known by the pid in ``pid_file``."""

    def __init__(self, pid_file: Path) -> None:
        self.pid_file = pid_file

    def pid(self) -> int | None:
        """The pid in the pid file when that process is alive, else None."""
        try:
            pid = int(self.pid_file.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return None
        return pid if alive(pid) else None

    def launch(self, command: Sequence[str], *, log_file: Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start ``command`` in the background, its output appended to ``log_file``, and record its pid."""
        with open(log_file, "ab") as out:
            process = subprocess.Popen(list(command), stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                       start_new_session=True, env=env)
        self.pid_file.write_text(f"{process.pid}\n", encoding="utf-8")
        return process

    def await_ready(self, process: subprocess.Popen, ready: Callable[[], bool], *, wait_s: float, what: str,
                    log_file: Path, error: type[MatcherError]) -> None:
        """Wait until ``ready()``; a process that exits, or not ready within ``wait_s``, is ``error``
        (the process is then stopped)."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise error(f"{what} exited with code {process.returncode} at start; see {log_file}")
            if ready():
                return
            time.sleep(0.5)
        self.stop(wait_s=10.0)
        raise error(f"{what} did not answer within {wait_s:.0f} s; see {log_file}")

    def stop(self, *, wait_s: float) -> int | None:
        """SIGTERM, then SIGKILL after ``wait_s`` seconds; the pid stopped, or None when none ran."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return None
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.2)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline and alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return pid
