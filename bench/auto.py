"""``python -m bench auto --out FILE.json``: the hand-written setup against the automatic one, on every data set.

For each data set the bench knows (:data:`DATASETS`), in one process and one SparkSession:

* ``hand``: the hand-written ``configs/<dataset>.yaml`` through
  :func:`matcher.pipeline.run_task` with retraining (:func:`bench.__main__.run_ours`);
* ``auto``: the automatic setup. :func:`matcher.profiling.write_starting_config` profiles the
  data set's source file(s) (every file of a multi-source set) and writes a starting config,
  which is loaded and run like ``hand``. While ``matcher.profiling`` is not importable, or
  when it or the run raises, the run is recorded as ``{"error": "<one line>"}`` and the
  bench goes on;
* ``splink_duckdb``: stock Splink 5 on DuckDB with the hand-written model spec
  (:func:`bench.stock.splink_duckdb`; a ``sources:`` config is harmonized by matcher on
  Spark first and its rows handed to DuckDB).

The JSON has ``machine``, ``source``, ``rounds``, ``runs`` and ``datasets.<name>`` with
``about`` (hand config, files, truth column) and one entry per run: ``pairwise_precision``,
``pairwise_recall``, ``pairwise_f1``, ``cluster_precision``, ``cluster_recall``,
``cluster_f1``, ``blocking_recall``, ``pairs``, ``wall_s`` (training and matching, as in
``python -m bench``; ``auto`` also has ``init_s``, the time to write its config), or ``error``.
The command fails (exit 1) only when a ``hand`` or ``splink_duckdb`` run fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from bench.datasets import ROOT
from bench.environment import load_average, machine, source_version, warm_up
from matcher.runtime.logs import configure_logging

log = logging.getLogger("bench.auto")

RUNS = ("hand", "auto", "splink_duckdb")
# runs whose failure fails the command; ``auto`` depends on work that may not have landed yet
REQUIRED_RUNS = ("hand", "splink_duckdb")


def _prepare_bench(name: str) -> Callable[[], None]:
    def prepare() -> None:
        from bench.datasets import prepare as write

        write(name)

    return prepare


def _prepare_pseudopeople() -> None:
    from bench.harmonize import prepare

    prepare()


def _prepare_pseudopeople_surveys() -> None:
    from bench.harmonize import prepare, prepare_surveys

    prepare()
    prepare_surveys()


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Dataset:
    """A data set of the bench: its hand-written config and how its files are written on first use."""

    config: Path
    prepare: Callable[[], None]


DATASETS: dict[str, Dataset] = {
    "febrl1": Dataset(ROOT / "configs" / "febrl1.yaml", _prepare_bench("febrl1")),
    "febrl2": Dataset(ROOT / "configs" / "febrl2.yaml", _prepare_bench("febrl2")),
    "febrl3": Dataset(ROOT / "configs" / "febrl3.yaml", _prepare_bench("febrl3")),
    "febrl4": Dataset(ROOT / "configs" / "febrl4.yaml", _prepare_bench("febrl4")),
    "historical_50k": Dataset(ROOT / "configs" / "historical_50k.yaml", _prepare_bench("historical_50k")),
    "fake_1000": Dataset(ROOT / "configs" / "fake_1000.yaml", _nothing),
    # bench.harmonize's scenarios: pseudopeople census x3 years, and census + SSA + W-2 (noise x5)
    "census_2020_2040": Dataset(ROOT / "configs" / "pseudopeople_census.yaml", _prepare_pseudopeople),
    "census_ssa_w2": Dataset(ROOT / "configs" / "pseudopeople.yaml", _prepare_pseudopeople),
    # census 2020 + American Community Survey + Current Population Survey (cell noise x5)
    "census_acs_cps": Dataset(ROOT / "configs" / "pseudopeople_surveys.yaml", _prepare_pseudopeople_surveys),
}


def source_files(config) -> list[str]:
    """Every file the hand-written config reads: its sources, else its inputs (absolute after load_config)."""
    specs = config.sources if config.sources is not None else config.inputs
    return [str(s.path) for s in specs]


def _relative(path: str | Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _one_line(err: BaseException) -> str:
    if isinstance(err, AutoRunError):  # already its cause's line
        return str(err)
    text = " ".join(str(err).split())
    line = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return line if len(line) <= 500 else line[:497] + "..."


def _headline(result: dict[str, Any]) -> dict[str, Any]:
    """``pairs`` beside the runners' ``n_pairs``: every run reports the same names."""
    if "n_pairs" in result:
        result["pairs"] = result["n_pairs"]
    return result


def run_hand(spark, config, workdir: Path) -> dict[str, Any]:
    from bench.__main__ import run_ours

    return _headline(run_ours(spark, config, workdir, label="hand"))


class AutoRunError(Exception):
    """An ``auto`` run that failed at ``stage`` (``import``, ``init``, ``load_config`` or ``run``)."""

    def __init__(self, stage: str, cause: BaseException, init_s: float | None = None):
        super().__init__(_one_line(cause))
        self.stage, self.init_s = stage, init_s


def run_auto(spark, name: str, hand, workdir: Path) -> dict[str, Any]:
    """Write a starting config (``workdir/auto.yaml``) with ``matcher init``'s function, then run it like ``hand``."""
    from bench.__main__ import run_ours
    from matcher.config.transform import load_config

    try:  # lazily: it may not exist yet
        try:
            from matcher.profiling import write_starting_config
        except ImportError:  # the package without the re-export
            from matcher.profiling.starting_config import write_starting_config
    except Exception as err:  # noqa: BLE001
        raise AutoRunError("import", err) from err
    written = workdir / "auto.yaml"
    written.unlink(missing_ok=True)  # an earlier invocation's, with the same --workdir: init refuses to overwrite
    started = time.perf_counter()
    try:
        write_starting_config(source_files(hand), output=written, truth_column=hand.truth_column, name=name)
    except Exception as err:  # noqa: BLE001
        raise AutoRunError("init", err) from err
    init_s = round(time.perf_counter() - started, 3)
    try:
        config = load_config(written)
    except Exception as err:  # noqa: BLE001 - e.g. no blocking rules until they are chosen automatically
        raise AutoRunError("load_config", err, init_s) from err
    try:
        result = _headline(run_ours(spark, config, workdir, label="auto"))
    except Exception as err:  # noqa: BLE001
        raise AutoRunError("run", err, init_s) from err
    result["init_s"] = init_s
    result["config_summary"] = {
        "columns": [{"name": c.name, "kind": c.kind.value} for c in config.columns],
        "blocking_rules": len(config.blocking_rules),
        "sources": len(config.sources) if config.sources is not None else None,
        "inputs": len(config.inputs),
    }
    return result


def run_duckdb(spark, config, workdir: Path) -> dict[str, Any]:
    from bench.__main__ import run_stock

    return _headline(run_stock("splink_duckdb", spark, config, workdir))


def _timed(run: str, name: str, spark, hand, workdir: Path) -> dict[str, Any]:
    """One run with the machine's load around it; a failure is recorded as one line, not raised."""
    load_before = load_average()
    log.info("%s / %s: starting (load average %s)", name, run, load_before)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        if run == "hand":
            result = run_hand(spark, hand, workdir)
        elif run == "auto":
            result = run_auto(spark, name, hand, workdir)
        else:
            result = run_duckdb(spark, hand, workdir)
    except Exception as err:  # noqa: BLE001 - one failed run should not hide the others
        log.error("%s / %s failed: %s", name, run, _one_line(err))
        log.debug("%s / %s: %s", name, run, traceback.format_exc())
        result = {"error": _one_line(err)}
        if isinstance(err, AutoRunError):  # how far the automatic setup got
            result["stage"] = err.stage
            if err.init_s is not None:
                result["init_s"] = err.init_s
    result["load_avg_before"] = load_before
    result["load_avg_after"] = load_average()
    return result


def run_dataset(spark, name: str, runs: Sequence[str], rounds: int, workdir: Path) -> dict[str, Any]:
    """Every run of one data set, ``rounds`` times; each run keeps its fastest round (``wall_s_rounds`` has all)."""
    from matcher.config.transform import load_config

    dataset = DATASETS[name]
    dataset.prepare()
    hand = load_config(dataset.config)
    out: dict[str, Any] = {
        "about": {
            "hand_config": _relative(dataset.config),
            "files": [_relative(f) for f in source_files(hand)],
            "truth_column": hand.truth_column,
            "sources": hand.sources is not None,
            "link_type": hand.resolved_link_type,
        }
    }
    if hand.sources is None:  # an untimed job over the inputs, as python -m bench does
        warm_up(spark, hand)
    for round_number in range(1, rounds + 1):
        for run in runs:
            result = _timed(run, name, spark, hand, workdir / name / f"round{round_number}")
            log.info("%s / %s, round %d: %s s", name, run, round_number, result.get("wall_s"))
            previous = out.get(run)
            wall_rounds = [*(previous or {}).get("wall_s_rounds", []), result.get("wall_s")]
            if previous is None or "error" in previous or ("error" not in result and result["wall_s"] < previous["wall_s"]):
                out[run] = result
            out[run]["wall_s_rounds"] = wall_rounds
    return out


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(report: dict[str, Any]) -> str:
    """The compact results table: one line per data set and run."""
    header = ("dataset", "run", "pairwise P", "pairwise R", "pairwise F1", "cluster F1", "blocking R", "pairs", "wall s")
    lines = [header]
    for name, runs in report["datasets"].items():
        if isinstance(runs.get("error"), str):  # the data set itself could not be prepared or loaded
            lines.append((name, "-", f"error: {runs['error'][:100]}"))
            continue
        for run in report["runs"]:
            r = runs.get(run)
            if r is None:
                continue
            if "error" in r:
                lines.append((name, run, f"error: {r['error'][:100]}"))
                continue
            lines.append((
                name, run, _fmt(r.get("pairwise_precision")), _fmt(r.get("pairwise_recall")), _fmt(r.get("pairwise_f1")),
                _fmt(r.get("cluster_f1")), _fmt(r.get("blocking_recall")), _fmt(r.get("pairs")), _fmt(r.get("wall_s"), 1),
            ))
    widths = [max(len(line[i]) for line in lines if len(line) == len(header) or i < 2) for i in range(len(header))]
    rendered = []
    for line in lines:
        if len(line) == len(header):
            rendered.append("  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths))))
        else:
            rendered.append("  ".join([line[0].ljust(widths[0]), line[1].ljust(widths[1]), line[2]]))
    return "\n".join(rendered)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench auto",
        description="The hand-written setup against the automatic one (and stock DuckDB Splink), on every data set.",
    )
    parser.add_argument("--out", required=True, metavar="FILE.json", help="where to write the results")
    parser.add_argument("--datasets", default=",".join(DATASETS),
                        help=f"comma-separated, in order (default: all: {','.join(DATASETS)})")
    parser.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated, in order (default: {','.join(RUNS)})")
    parser.add_argument("--workdir", metavar="DIR",
                        help="keep run folders and written configs here (default: a temporary folder, removed)")
    parser.add_argument("--memory", default="4g", help="Spark driver memory (default 4g)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every data set's runs this many times and keep each run's fastest round (default 1)")
    parser.add_argument("--log-level", default="INFO", help="INFO (default) or DEBUG (adds the tracebacks of failed runs)")
    return parser


def _names(value: str, known: Sequence[str], what: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        given = ", ".join(unknown) or "(none given)"
        raise ValueError(f"unknown {what} {given} (expected: {', '.join(known)})")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        datasets = _names(args.datasets, list(DATASETS), "data set(s)")
        runs = _names(args.runs, RUNS, "run(s)")
    except ValueError as err:
        print(f"bench auto: error: {err}", file=sys.stderr)
        return 2
    configure_logging(args.log_level.upper())

    from matcher.runtime.session import get_session

    spark = get_session(memory=args.memory)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-auto-"))
    workdir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "command": "auto",
        "machine": machine(spark),
        "source": source_version(),
        "rounds": args.rounds,
        "runs": runs,
        "datasets": {},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        for name in datasets:
            try:
                report["datasets"][name] = run_dataset(spark, name, runs, args.rounds, workdir)
            except Exception as err:  # noqa: BLE001 - data set could not be prepared or its hand config loaded
                log.error("%s: %s", name, _one_line(err))
                log.debug("%s: %s", name, traceback.format_exc())
                report["datasets"][name] = {"error": _one_line(err)}
            # written after every data set, so a long run that is stopped keeps what it measured
            out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    failed = [f"{name}" for name, r in report["datasets"].items() if "error" in r]
    failed += [f"{name}/{run}" for name, r in report["datasets"].items() for run in REQUIRED_RUNS if "error" in r.get(run, {})]
    print(table(report))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
