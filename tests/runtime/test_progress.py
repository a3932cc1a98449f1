"""Progress of the stages: plain lines off a terminal (throttled heartbeat), a bar on one, Spark's job
descriptions and task counts, and the stages a real ``matcher run`` shows."""

from __future__ import annotations

import io
import logging
import threading
import time

import pytest
import yaml
from rich.console import Console

from matcher.cli import main
from matcher.runtime import progress
from matcher.runtime.progress import HEARTBEAT_S, Bars, Lines, Tracker


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "matcher.progress"]


@pytest.fixture
def progress_log(caplog):
    caplog.set_level(logging.INFO, logger="matcher.progress")
    return caplog


def test_plain_lines_start_a_throttled_heartbeat_and_done(progress_log):
    clock = FakeClock()
    tracker = Tracker(Lines, clock=clock, tasks=lambda: (12, 40), poll_s=None, describe=lambda _: None)
    train = tracker.open("train", None, "rows", is_step=False)
    tracker.open("u estimation", None, "rows", is_step=True)
    for _ in range(3):  # polled often, within one heartbeat period
        clock.now += HEARTBEAT_S / 4
        tracker.tick()
    clock.now += HEARTBEAT_S / 4
    tracker.tick()
    tracker.tick()
    tracker.open("EM", 2, "sessions", is_step=True)  # the next step ends the one before
    tracker.advance(1)
    clock.now += 1.5
    tracker.close(train)
    assert lines(progress_log) == [
        "stage train started",
        "stage train › u estimation started",
        "stage train › u estimation: 12/40 Spark tasks, 10 s",
        "stage train › u estimation done in 10.0 s",
        "stage train › EM started",
        "stage train › EM done in 1.5 s (1/2 sessions)",
        "stage train done in 11.5 s",
    ]
    assert tracker.timings == {"train › u estimation": 10.0, "train › EM": 1.5, "train": 11.5}


def test_a_step_without_an_open_stage_is_nothing_and_a_failure_is_named(progress_log):
    clock = FakeClock()
    tracker = Tracker(Lines, clock=clock, tasks=lambda: None, poll_s=None, describe=lambda _: None)
    assert tracker.open("score pairs", None, "rows", is_step=True) is None
    match = tracker.open("match", None, "rows", is_step=False)
    clock.now += 2
    tracker.close(match, failed=True)
    assert lines(progress_log) == ["stage match started", "stage match failed after 2.0 s"]


def test_on_a_terminal_a_bar_is_drawn_and_a_finished_stage_leaves_a_line():
    out = io.StringIO()
    shown: list[Bars] = []

    def bars() -> Bars:
        shown.append(Bars(Console(file=out, force_terminal=True, width=100, color_system=None)))
        return shown[0]

    tracker = Tracker(bars, tasks=lambda: (2, 4), poll_s=None, describe=lambda _: None)
    match = tracker.open("match", None, "rows", is_step=False)
    tracker.open("score pairs", None, "rows", is_step=True)
    tracker.tick()
    shown[0].progress.refresh()
    drawn = out.getvalue()
    assert "score pairs" in drawn and "2/4 Spark tasks" in drawn
    assert "━" in drawn  # the bar: half of the Spark tasks done
    tracker.close(match)
    assert "✓ match › score pairs" in out.getvalue() and "✓ match " in out.getvalue()
    assert not shown[0].progress.live.is_started


def test_a_stage_names_its_spark_jobs_and_sees_their_tasks(spark):
    sc = spark.sparkContext
    tracker = Tracker(progress.Silent, poll_s=None)
    original, progress.tracker = progress.tracker, tracker
    try:
        with progress.stage("write matches"):
            progress.step("count")
            assert sc.getLocalProperty("spark.job.description") == "matcher: write matches › count"
        assert sc.getLocalProperty("spark.job.description") is None
    finally:
        progress.tracker = original
    assert set(tracker.timings) == {"write matches", "write matches › count"}
    assert progress.spark_tasks() is None  # nothing runs now
    job = threading.Thread(target=lambda: spark.range(4, numPartitions=4).rdd.map(lambda x: time.sleep(1) or x).count())
    job.start()
    seen = None
    while seen is None and job.is_alive():
        seen = progress.spark_tasks()
        time.sleep(0.05)
    job.join()
    assert seen is not None and seen[1] == 4 and 0 <= seen[0] < 4


def test_a_run_off_a_terminal_logs_every_main_stage(tmp_path, spark, capsys, progress_log):
    data = tmp_path / "people.csv"
    data.write_text(
        "pk,first_name,city,cluster\n" + "".join(
            f"{i},{name},{city},{name}\n"
            for i, (name, city) in enumerate([("ann", "leeds"), ("ann", "leeds"), ("anne", "leeds"), ("bob", "york"),
                                              ("bob", "york"), ("rob", "york"), ("cy", "hull"), ("dee", "hull")])
        ),
        encoding="utf-8",
    )
    config = {
        "name": "tiny", "inputs": [{"name": "people", "path": str(data), "format": "csv"}], "primary_key": "pk",
        "columns": [{"name": "first_name", "kind": "name"}, {"name": "city", "kind": "exact"}],
        "blocking_rules": [["city"]], "truth_column": "cluster",
        "training": {"deterministic_rules": [["first_name"]], "em_blocking_rules": [["city"]]},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    assert main(["run", "--config", str(path), "--output", str(tmp_path / "out")]) == 0, capsys.readouterr().err
    done = [line.split(" done in ")[0] for line in lines(progress_log) if " done in " in line]
    assert done == [
        "stage read inputs",
        "stage train › profile inputs", "stage train › automatic setup", "stage train › compare candidate pairs",
        "stage train › u estimation", "stage train › EM", "stage train › dependence", "stage train › lambda",
        "stage train › threshold",
        "stage train",
        "stage match › read inputs", "stage match › score and write pairs", "stage match › cluster",
        "stage match › write matches", "stage match",
        "stage evaluate", "stage report",
    ]
    assert all("ann" not in line and "leeds" not in line for line in lines(progress_log))  # names of stages only

    shown = len(lines(progress_log))
    try:
        assert main(["--no-progress", "run", "--config", str(path), "--output", str(tmp_path / "out")]) == 0
    finally:
        progress.set_mode(None)
    assert len(lines(progress_log)) == shown  # the second run showed nothing
