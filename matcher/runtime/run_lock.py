"""The run-folder lock: one matcher process writes a run folder at a time.

``<run>/.matcher.lock`` is held with ``fcntl.flock`` for as long as a task works in the
folder, and says who holds it (pid, host, start time, command). The kernel releases the
lock when its process ends, however it ends, so a killed run never blocks the next one.
The data stewards' ``decisions.jsonl.lock`` is a different lock and is never touched here.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from matcher.runtime.errors import ConfigError

LOCK_FILE = ".matcher.lock"

_held: dict[Path, int] = {}
"""The run folders this process holds the lock of, with how many tasks (nested) hold it."""


def held_here(root: Path) -> bool:
    """Whether a task of this process holds ``root``'s lock."""
    return root in _held


def holder() -> str:
    """This process as a lock's holder (JSON: pid, host, start time, command)."""
    argv = [Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python", *sys.argv[1:]]
    command = "matcher " + " ".join(argv[1:]) if argv[0] in ("matcher", "__main__.py") else " ".join(argv)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started, "command": command})


def describe_holder(h: dict) -> str:
    """A lock holder (:func:`holder`) for a message."""
    try:
        return f"pid {h['pid']} on {h['host']}, started {h['started']}: {h['command']}"
    except (TypeError, KeyError):
        return "another process"


def _describe(text: str) -> str:
    try:
        return describe_holder(json.loads(text))
    except ValueError:
        return "another process"


def _open(root: Path) -> IO[str]:
    try:
        return open(root / LOCK_FILE, "a+", encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{root}: the run folder is not writable ({err.strerror})") from None


@contextmanager
def run_folder_lock(root: Path) -> Iterator[None]:
    """Hold ``root``'s lock while the block runs; tasks nested in this process share it.

    Another process holding it is a one-line error naming that process; an unwritable folder too."""
    if root in _held:
        _held[root] += 1
        try:
            yield
        finally:
            _held[root] -= 1
        return
    handle = _open(root)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise ConfigError(
                f"{root}: another matcher task is writing this run folder ({_describe(handle.read())}); "
                "wait for it to end or choose another --output"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(holder())
        handle.flush()
        _held[root] = 1
        try:
            yield
        finally:
            del _held[root]
            handle.truncate(0)  # the holder is gone: the file no longer names it
    finally:
        handle.close()  # closing releases the flock
