"""Faults around the run folder: two runs at once, a run killed half-way, a user's file in
``matches/``, an output that cannot be written or is a file, a full disk."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from matcher.runtime.errors import ConfigError
from matcher.runtime.outputs import check_matcher_written
from matcher.runtime.run_lock import LOCK_FILE
from tests.conftest import COMPLETE_MARKERS, REPO, assert_one_line_error

CONFIG = REPO / "configs" / "fake_1000.yaml"
ENV = {**os.environ, "PYTHONPATH": str(REPO), "JAVA_HOME": os.environ.get("JAVA_HOME", "/usr/lib/jvm/java-17-openjdk-amd64")}
DECISION_LOG = "decisions.jsonl"


@pytest.fixture
def run_copy(fake_1000_run, tmp_path) -> Path:
    """A completed fake_1000 run with a decision log and its lock, copied so a test may change it."""
    folder = tmp_path / "run"
    shutil.copytree(fake_1000_run.root, folder)
    (folder / DECISION_LOG).write_text("", encoding="utf-8")
    (folder / f"{DECISION_LOG}.lock").write_text("", encoding="utf-8")
    return folder


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` (bar the run lock) by relative path: size and modification time."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*")) if p.is_file() and p.name != LOCK_FILE
    }


def match_ids(folder: Path) -> pd.Series:
    frame = pd.read_parquet(folder / "matches", columns=["unique_id", "match_id"])
    return frame.set_index("unique_id")["match_id"].sort_index()


def wait_until(condition, what: str, timeout: float = 120, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process is None or process.poll() is None, f"the process ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def start(*code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *code], env=ENV, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


# 1. two tasks in one run folder at once

def test_a_second_task_is_refused_naming_the_first_and_a_killed_holder_blocks_nothing(cli, run_copy):
    before = snapshot(run_copy)
    holder = start("-c", (
        "import sys, time; from pathlib import Path; from matcher.runtime.run_lock import run_folder_lock\n"
        f"with run_folder_lock(Path({str(run_copy)!r})):\n    print('held', flush=True); time.sleep(600)"
    ))
    try:
        wait_until(lambda: (run_copy / LOCK_FILE).exists() and (run_copy / LOCK_FILE).read_text(), "the lock", 30, holder)
        started = time.monotonic()
        for task in ("run", "match", "evaluate"):
            line = assert_one_line_error(
                cli(task, "--config", CONFIG, "--output", run_copy),
                str(run_copy), "another matcher task is writing this run folder", f"pid {holder.pid}",
                f"on {socket.gethostname()}", "started 20", "-c",
            )
        assert time.monotonic() - started < 10, "refused at once, not after the work"
        assert snapshot(run_copy) == before, "a refused task changes nothing (decision log and its lock included)"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the kernel released the killed holder's lock; its stale description does not block
    assert (run_copy / LOCK_FILE).read_text()
    result = cli("evaluate", "--config", CONFIG, "--output", run_copy)
    assert result.code == 0, result.err
    assert (run_copy / LOCK_FILE).read_text() == "", "a finished task leaves no holder named"
    assert (run_copy / f"{DECISION_LOG}.lock").read_text() == "" and (run_copy / DECISION_LOG).read_text() == ""


# 2. a re-run killed half-way (1. too: a real run holds the lock)

@pytest.mark.slow
def test_a_rerun_killed_mid_write_does_not_look_complete_and_the_next_run_gives_the_same_ids(cli, run_copy, fake_1000_run):
    matches = run_copy / "matches"
    old_matches = matches.stat().st_ino
    run = start("-m", "matcher", "run", "--config", str(CONFIG), "--output", str(run_copy))
    try:
        wait_until(lambda: (run_copy / LOCK_FILE).read_text() if (run_copy / LOCK_FILE).exists() else "", "the lock", 60, run)
        assert_one_line_error(cli("run", "--config", CONFIG, "--output", run_copy), f"pid {run.pid}", "matcher run --config")
        # the re-run has replaced matches/ but not yet pairs/ (moved into place after it): old and new side by side
        wait_until(lambda: matches.exists() and matches.stat().st_ino != old_matches, "matches/ replaced", 180, run)
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    assert run.returncode == -signal.SIGKILL
    for marker in COMPLETE_MARKERS[:2]:
        assert not (run_copy / marker).exists(), f"{marker} of the old run still makes the folder look complete"
    assert not (run_copy / "report.html").exists()
    assert_one_line_error(cli("evaluate", "--config", CONFIG, "--output", run_copy), str(run_copy), "summary.json missing")
    assert (run_copy / DECISION_LOG).read_text() == "" and (run_copy / f"{DECISION_LOG}.lock").read_text() == ""

    result = cli("run", "--config", CONFIG, "--output", run_copy)
    assert result.code == 0, result.err
    assert all((run_copy / marker).exists() for marker in COMPLETE_MARKERS)
    pd.testing.assert_series_equal(match_ids(run_copy), match_ids(fake_1000_run.root))


# 3. a user's own file in matches/

def test_a_users_file_in_matches_is_refused_and_kept(cli, run_copy):
    own = run_copy / "matches" / "my notes.txt"
    own.write_text("mine", encoding="utf-8")
    before = snapshot(run_copy)
    assert_one_line_error(cli("run", "--config", CONFIG, "--output", run_copy), str(own), "not written by the matcher")
    assert snapshot(run_copy) == before, "refused before anything changed: the file and the completed run stay"


def test_only_the_matchers_own_files_may_be_replaced(tmp_path):
    folder = tmp_path / "matches"
    folder.mkdir()
    for name in ("part-00000-1b2c-c000.snappy.parquet", ".part-00000-1b2c-c000.snappy.parquet.crc", "_SUCCESS",
                 "._SUCCESS.crc", "part-serve-20260101T000000-abc.parquet", ".part-serve-20260101T000000-abc.parquet.tmp"):
        (folder / name).write_bytes(b"")
    check_matcher_written(folder)
    check_matcher_written(tmp_path / "absent")
    for foreign in ("notes.txt", "_SUCCESS.bak", "part-00001/"):
        path = folder / foreign.rstrip("/")
        path.mkdir() if foreign.endswith("/") else path.write_bytes(b"")
        with pytest.raises(ConfigError, match="not written by the matcher"):
            check_matcher_written(folder)
        path.rmdir() if foreign.endswith("/") else path.unlink()


# 4. an output that cannot be written; 5. an output that is a file

def _tmpfs(folder: Path, options: str, what: str):
    """A tmpfs mounted on a new ``folder`` with ``options`` for the test, skipped when mounting is not allowed;
    unmounted lazily after it (Spark may still hold a file there)."""
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount {what}: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", "--lazy", str(folder)], check=True)


@pytest.fixture
def read_only_folder(tmp_path):
    """A read-only file system (a tmpfs mounted ``ro``: permissions alone do not stop root)."""
    yield from _tmpfs(tmp_path / "read-only", "ro,size=64k", "a read-only tmpfs")


def test_a_read_only_output_is_named_before_spark_works(cli, read_only_folder):
    assert_one_line_error(cli("run", "--config", CONFIG, "--output", read_only_folder), str(read_only_folder), "not writable")
    inner = read_only_folder / "run"
    assert_one_line_error(cli("run", "--config", CONFIG, "--output", inner), str(inner), "not writable")
    assert list(read_only_folder.iterdir()) == []


def test_an_output_that_is_a_file_is_named(cli, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("mine", encoding="utf-8")
    assert_one_line_error(cli("run", "--config", CONFIG, "--output", afile), str(afile), "is a file, not a run folder")
    inner = afile / "run"
    assert_one_line_error(cli("match", "--config", CONFIG, "--output", inner), str(inner), f"{afile} is a file")
    assert afile.read_text() == "mine"


# a full disk

@pytest.fixture
def tiny_disk(tmp_path):
    yield from _tmpfs(tmp_path / "tiny", "size=256k", "a tiny tmpfs")


@pytest.mark.slow
def test_a_full_disk_fails_on_one_line_and_leaves_nothing_complete(cli, tiny_disk):
    result = cli("run", "--config", CONFIG, "--output", tiny_disk / "run")
    assert_one_line_error(result, str(tiny_disk / "run"), "no space left on the device")
    present = {p.name for p in (tiny_disk / "run").iterdir()}
    assert not present & set(COMPLETE_MARKERS), present  # the model, whole and small, may stay
