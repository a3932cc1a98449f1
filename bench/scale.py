"""``python -m bench scale --rows 100000,250000,1000000 --out FILE.json``: cost and accuracy as the data grows.

For each size N, :func:`bench.generate.generate` writes a multi-source data set once into
``--workdir`` (reused while its manifest matches), then each run goes in its own
subprocess, so its memory is its own: the peak of the summed RSS of the process tree (the
JVM included), sampled every 0.5 s with psutil.

* ``ours_cli``: ``python -m matcher run --config DIR/config.yaml`` (automatic setup) into a
  fresh folder; ``wall_s`` is process start to exit, ``stages`` come from the run's
  ``summary.json`` and ``model/metadata.json``;
* ``ours_init``: as a new user starts from files: ``python -m matcher init`` on the sources
  (``init_s``; it decides the mapping and the comparison columns), then ``matcher run`` of the
  config it wrote (``wall_s``, as for ``ours_cli``);
* ``ours_init_independent``: ``ours_init`` with ``training.correct_dependence: false`` added
  to the written config: the comparisons taken as independent, the baseline that shows what
  the dependence correction (:mod:`matcher.training.dependence`) changes;
* ``ours_spec``: the same with ``DIR/spec.yaml`` (hand-written blocking rules);
* ``splink_duckdb`` / ``splink_spark_stock``: stock Splink 5 with ``spec.yaml``'s comparisons
  and blocking rules (:mod:`bench.stock`), on matcher's harmonized rows; ``wall_s`` is from
  reading the sources to having clusters. The training rules ``spec.yaml`` leaves to the data
  are chosen first by matcher's automatic setup, untimed (``rules_s``): a stock user writes them.
  Stock Spark is skipped above ``--stock-cap-rows`` and stopped after ``--cap-s``.

Every run is scored the same way against ``truth.parquet`` (:mod:`pandas`, not Spark).
``python -m bench.scale --one RUN ...`` is the stock runs' subprocess entry.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import psutil
import pyarrow.parquet as pq
import yaml

from bench.datasets import ROOT
from bench.environment import load_average, machine, source_version

log = logging.getLogger("bench.scale")

RUNS = ("ours_cli", "ours_init", "ours_init_independent", "ours_spec", "splink_duckdb", "splink_spark_stock")
STOCK_RUNS = ("splink_duckdb", "splink_spark_stock")
DEFAULT_WORKDIR = Path("/tmp/matcher-scale")
PAIRWISE_DEFINITION = ("scored pairs with match_probability >= the run's threshold (ours: pairs/ and summary.json's "
                       "threshold_match_probability; stock: Splink's predictions at the config's threshold) against "
                       "all pairs of records of the same person in truth.parquet")
CLUSTER_DEFINITION = "pairs of records within one predicted cluster against pairs within one true person"


# --- measuring a subprocess -------------------------------------------------------------------

@dataclass
class Measured:
    """A finished (or stopped) subprocess: its wall time, peak tree RSS and exit code."""

    wall_s: float
    peak_rss_gb: float
    returncode: int | None
    capped: bool


def _spawning_from_jvm(member: psutil.Process) -> bool:
    """Whether ``member`` is a JVM's child between spawn and exec. The JVM starts programs
    (Hadoop's ``chmod``, its helpers) with ``posix_spawn``, which runs the child in the JVM's
    own memory until the exec: in that window the child reads as a second copy of the JVM's
    RSS, under the JVM's command line."""
    parent = member.parent()
    return parent is not None and parent.name() == "java" and member.cmdline() == parent.cmdline()


def tree_rss_bytes(process: psutil.Process) -> int:
    """Summed resident memory of ``process`` and all its descendants (processes that vanish count 0;
    a JVM's child that has not yet exec'd shares the JVM's memory and counts 0)."""
    total = 0
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for member in members:
        try:
            if member is not process and _spawning_from_jvm(member):
                continue
            total += member.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def _kill_tree(process: psutil.Process) -> None:
    """Kill ``process`` and its descendants (the subprocess we started and what it started)."""
    try:
        members = [*process.children(recursive=True), process]
    except psutil.NoSuchProcess:
        return
    for member in members:
        try:
            member.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass


def run_measured(cmd: list[str], log_path: Path, cap_s: float | None = None, interval_s: float = 0.5) -> Measured:
    """Run ``cmd`` (output to ``log_path``), sampling its process tree's RSS every ``interval_s``;
    kill the tree after ``cap_s`` seconds."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log_path, "w", encoding="utf-8") as out:
        started = time.perf_counter()
        popen = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        process = psutil.Process(popen.pid)
        peak, capped = 0, False
        while popen.poll() is None:
            peak = max(peak, tree_rss_bytes(process))
            if cap_s is not None and time.perf_counter() - started > cap_s:
                _kill_tree(process)
                capped = True
                popen.wait()
                break
            time.sleep(interval_s)
        wall = time.perf_counter() - started
    return Measured(round(wall, 3), round(peak / 1024**3, 3), popen.returncode, capped)


# --- accuracy ---------------------------------------------------------------------------------

def _pairs_within(groups: pd.Series) -> int:
    """Sum over group sizes n of n (n - 1) / 2."""
    sizes = groups.value_counts().to_numpy(dtype=np.int64)
    return int((sizes * (sizes - 1) // 2).sum())


def _prf(tp: int, predicted: int, true: int) -> dict[str, float]:
    precision = tp / predicted if predicted else 1.0
    recall = tp / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 6), "recall": round(recall, 6), "f1": round(f1, 6)}


def read_truth(path: Path) -> pd.Series:
    """``person_id`` indexed by ``"<source>:<record_id>"``, the record ids matcher writes."""
    truth = pd.read_parquet(path)
    return pd.Series(truth["person_id"].to_numpy(), index=truth["source"] + ":" + truth["record_id"].astype(str))


def evaluate(record_ids: pd.Series, cluster_ids: pd.Series, id_l: pd.Series, id_r: pd.Series,
             truth: pd.Series) -> dict[str, Any]:
    """Cluster and pairwise precision/recall/F1 of one run against ``truth`` (:func:`read_truth`).

    ``record_ids``/``cluster_ids``: every output record and its cluster; ``id_l``/``id_r``: the
    pairs the run calls matches (already filtered at its threshold). Records of the truth
    missing from the output count as singletons."""
    true_pairs = _pairs_within(pd.Series(truth.to_numpy()))
    people = truth.reindex(record_ids.to_numpy()).to_numpy()
    known = ~pd.isna(people)
    clusters = pd.Series(cluster_ids.to_numpy()[known])
    joint = clusters.astype(str) + "\x1f" + pd.Series(people[known]).astype(np.int64).astype(str)
    cluster = _prf(_pairs_within(joint), _pairs_within(clusters), true_pairs)
    left, right = truth.reindex(id_l.to_numpy()).to_numpy(), truth.reindex(id_r.to_numpy()).to_numpy()
    same = int(np.sum((left == right) & ~pd.isna(left)))
    pairwise = _prf(same, len(id_l), true_pairs)
    return {
        "pairwise_f1": pairwise["f1"], "cluster_f1": cluster["f1"],
        "pairwise": pairwise, "clusters": cluster,
        "matched_pairs": int(len(id_l)), "true_pairs": true_pairs,
        "largest_cluster": int(cluster_ids.value_counts().max()) if len(cluster_ids) else 0,
        "largest_true_entity": int(truth.value_counts().max()),
    }


def _read_columns(path: Path, columns: list[str]) -> pd.DataFrame:
    return pq.read_table(path, columns=columns).to_pandas()


def _evaluate_outputs(folder: Path, facts: str, rows: str, cluster: str, pairs: str, truth: pd.Series) -> dict[str, Any]:
    """:func:`evaluate` of a run's rows (``record_id`` + ``cluster``) and scored pairs at the threshold in ``facts``."""
    threshold = json.loads((folder / facts).read_text(encoding="utf-8"))["threshold_match_probability"]
    members = _read_columns(folder / rows, ["record_id", cluster])
    scored = _read_columns(folder / pairs, ["record_id_l", "record_id_r", "match_probability"])
    kept = scored[scored["match_probability"] >= threshold]
    return evaluate(members["record_id"], members[cluster], kept["record_id_l"], kept["record_id_r"], truth)


def evaluate_ours(folder: Path, truth: pd.Series) -> dict[str, Any]:
    """:func:`evaluate` of a matcher run folder: ``matches/``, ``pairs/`` at summary.json's threshold."""
    return _evaluate_outputs(folder, "summary.json", "matches", "match_id", "pairs", truth)


def evaluate_stock(folder: Path, truth: pd.Series) -> dict[str, Any]:
    """:func:`evaluate` of a stock run's ``rows.parquet`` and ``pairs.parquet`` at ``result.json``'s threshold."""
    return _evaluate_outputs(folder, "result.json", "rows.parquet", "cluster_id", "pairs.parquet", truth)


# --- the runs ---------------------------------------------------------------------------------

def ours_stages(folder: Path) -> dict[str, float]:
    """Seconds per stage: summary.json's ``timings_s`` and the model's training ``timings_s``."""
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    stages = dict(summary.get("timings_s", {}))
    meta = folder / "model" / "metadata.json"
    if meta.exists():
        training = json.loads(meta.read_text(encoding="utf-8")).get("timings_s", {})
        stages.update({k: v for k, v in training.items() if k != "total"})  # "total" is summary's "train"
    return stages


def run_ours(config: Path, folder: Path, truth: pd.Series, cap_s: float) -> dict[str, Any]:
    """A cold ``python -m matcher run`` of ``config`` into ``folder``, measured and scored."""
    cmd = [sys.executable, "-m", "matcher", "run", "--config", str(config), "--output", str(folder)]
    measured = run_measured(cmd, folder.parent / f"{folder.name}.log", cap_s)
    result = _measured_fields(measured, cap_s)
    if measured.returncode == 0:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        result.update(pairs=summary["n_pairs"], stages=ours_stages(folder), **evaluate_ours(folder, truth))
    return result


def run_ours_init(data: Path, folder: Path, truth: pd.Series, cap_s: float, *, correct_dependence: bool = True) -> dict[str, Any]:
    """``matcher init`` on the data set's source files (timed as ``init_s``), then :func:`run_ours` of its config
    (with ``training.correct_dependence: false`` added unless ``correct_dependence``)."""
    manifest = json.loads((data / "manifest.json").read_text(encoding="utf-8"))
    config = folder.parent / f"{folder.name}.yaml"
    cmd = [sys.executable, "-m", "matcher", "init", "--output", str(config), "--force"]
    for source in manifest["sources"]:
        cmd += ["--source", str(data / source["file"])]
    init = run_measured(cmd, folder.parent / f"{folder.name}_init.log", cap_s)
    if init.returncode != 0:
        return {**_measured_fields(init, cap_s), "init_failed": True}
    if not correct_dependence:
        written = yaml.safe_load(config.read_text(encoding="utf-8"))
        written.setdefault("training", {})["correct_dependence"] = False
        config.write_text(yaml.safe_dump(written, sort_keys=False), encoding="utf-8")
    return {**run_ours(config, folder, truth, cap_s), "init_s": round(init.wall_s, 2)}


def run_stock(name: str, spec: Path, folder: Path, truth: pd.Series, cap_s: float, memory: str) -> dict[str, Any]:
    """Stock Splink (``name``) on ``spec`` in a ``python -m bench.scale --one`` subprocess, measured and scored."""
    cmd = [sys.executable, "-m", "bench.scale", "--one", name, "--config", str(spec), "--folder", str(folder),
           "--memory", memory]
    measured = run_measured(cmd, folder.parent / f"{folder.name}.log", cap_s)
    result = _measured_fields(measured, cap_s)
    if measured.returncode == 0:
        child = json.loads((folder / "result.json").read_text(encoding="utf-8"))
        result.update(wall_s=child["wall_s"], pairs=child["pairs"], rules_s=child["rules_s"],
                      stages=child["timings_s"], **evaluate_stock(folder, truth))
    return result


def _measured_fields(measured: Measured, cap_s: float) -> dict[str, Any]:
    """``wall_s`` (process start to exit), ``process_s``, ``peak_rss_gb``; a stopped or failed run says so."""
    fields: dict[str, Any] = {"wall_s": measured.wall_s, "process_s": measured.wall_s, "peak_rss_gb": measured.peak_rss_gb}
    if measured.capped:
        fields.update(wall_s=None, capped_s=cap_s)
    elif measured.returncode != 0:
        fields.update(wall_s=None, error=f"exit code {measured.returncode} (see the run's .log)")
    return fields


# --- the stock subprocess (``--one``) ---------------------------------------------------------

def _harmonized_with_rules(spark, config, timings: dict[str, float]):
    """matcher's harmonized rows (cached; timed as ``harmonize``) and the config with the rules it leaves to
    the data chosen by matcher's automatic setup; also the seconds that choice took (not a stock cost)."""
    from matcher.harmonize.harmonization import harmonize
    from matcher.model.postcode import resolve_formats
    from matcher.training.setup import automatic_setup

    t = time.perf_counter()
    rows = harmonize(spark, config).rows.cache()
    rows.count()
    timings["harmonize"] = time.perf_counter() - t
    t = time.perf_counter()
    config = automatic_setup(rows, resolve_formats(rows, config)).config
    return rows, config, time.perf_counter() - t


def _linker(name: str, spark, rows, config, folder: Path):
    """Stock Splink's linker over the harmonized rows: DuckDB on a pandas copy, or Spark checkpointing in ``folder``."""
    from splink import DuckDBAPI, SparkAPI

    from bench.stock import stock_linker
    from matcher.model.comparisons import comparable

    if name == "splink_duckdb":
        return stock_linker(DuckDBAPI(), [comparable(rows, config).toPandas()], config)
    checkpoints = folder / "_checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    spark.sparkContext.setCheckpointDir(str(checkpoints))
    return stock_linker(SparkAPI(spark_session=spark), [comparable(rows, config)], config)


def _stock_child(name: str, config_path: Path, folder: Path, memory: str) -> dict[str, Any]:
    """Harmonize (timed), choose the rules spec.yaml leaves to the data (untimed), run stock Splink
    (timed), write ``pairs.parquet`` and ``rows.parquet`` (untimed) into ``folder``."""
    from bench.stock import train_predict_cluster
    from matcher.config.transform import load_config
    from matcher.matching.threshold import resolve_threshold
    from matcher.runtime.session import get_session

    spark = get_session(memory=memory)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    rows, config, rules_s = _harmonized_with_rules(spark, load_config(config_path), timings)
    t = time.perf_counter()
    linker = _linker(name, spark, rows, config, folder)
    timings["setup"] = time.perf_counter() - t
    predictions, clusters = train_predict_cluster(linker, config, timings)
    if name == "splink_spark_stock":
        clusters.as_spark_dataframe().count()
    wall_s = time.perf_counter() - started - rules_s
    pairs = _write_outputs(name, predictions, clusters, config.primary_key, folder)
    threshold = resolve_threshold(config, None).match_probability
    return {"wall_s": round(wall_s, 3), "rules_s": round(rules_s, 3), "pairs": pairs,
            "threshold_match_probability": threshold, "timings_s": {k: round(v, 3) for k, v in timings.items()}}


def _write_outputs(name: str, predictions, clusters, key: str, folder: Path) -> int:
    """Write the scored pairs (ids, probability) and clustered rows (id, cluster) as Parquet; the pair count."""
    pair_cols = [f"{key}_l", f"{key}_r", "match_probability"]
    if name == "splink_duckdb":
        pairs = predictions.as_duckdbpyrelation().select(*[f'"{c}"' for c in pair_cols]).to_df()
        rows = clusters.as_duckdbpyrelation().select(f'"{key}"', '"cluster_id"').to_df()
        pairs.rename(columns={f"{key}_l": "record_id_l", f"{key}_r": "record_id_r"}).to_parquet(folder / "pairs.parquet")
        rows.rename(columns={key: "record_id"}).to_parquet(folder / "rows.parquet")
        return len(pairs)
    from pyspark.sql import functions as F

    scored = predictions.as_spark_dataframe().select(
        F.col(pair_cols[0]).alias("record_id_l"), F.col(pair_cols[1]).alias("record_id_r"), "match_probability")
    scored.coalesce(1).write.mode("overwrite").parquet(str(folder / "pairs.parquet"))
    clusters.as_spark_dataframe().select(F.col(key).alias("record_id"), "cluster_id").coalesce(1) \
        .write.mode("overwrite").parquet(str(folder / "rows.parquet"))
    return pq.ParquetDataset(folder / "pairs.parquet").read(columns=["match_probability"]).num_rows


# --- sizes, data, report ----------------------------------------------------------------------

def dataset(rows: int, workdir: Path, sources: int, seed: int) -> Path:
    """The generated data set of ``rows`` rows under ``workdir``, written unless its manifest matches."""
    from bench.generate import GENERATOR_VERSION, generate

    folder = workdir / f"data_{rows}_s{sources}_seed{seed}"
    manifest = folder / "manifest.json"
    wanted = {"rows": rows, "sources": sources, "seed": seed}
    if manifest.exists():
        known = json.loads(manifest.read_text(encoding="utf-8"))
        if known.get("generator_version") == GENERATOR_VERSION and known.get("args") == wanted:
            return folder
    shutil.rmtree(folder, ignore_errors=True)
    log.info("generating %d rows into %s", rows, folder)
    generate(rows, sources=sources, seed=seed, out=folder)
    return folder


def run_one_size(rows: int, data: Path, runs: list[str], args: argparse.Namespace,
                 results: dict[str, Any], save: Callable[[], None]) -> None:
    """Every chosen run on one generated data set into ``results``, one after the other, each in a fresh
    folder; ``save`` after each run, so a stopped bench keeps what it measured."""
    truth = read_truth(data / "truth.parquet")
    base = Path(args.workdir) / f"runs_{rows}"
    for name in runs:
        folder = base / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.parent.mkdir(parents=True, exist_ok=True)
        before = load_average()
        log.info("%d rows, %s: starting (load average %s)", rows, name, before)
        if name == "splink_spark_stock" and rows > args.stock_cap_rows:
            results[name] = {"wall_s": None, "capped_s": None, "skipped": f"rows above --stock-cap-rows {args.stock_cap_rows}"}
            save()
            continue
        if name in STOCK_RUNS:
            folder.mkdir(parents=True)
            result = run_stock(name, data / "spec.yaml", folder, truth, args.cap_s, args.memory)
        elif name in ("ours_init", "ours_init_independent"):
            result = run_ours_init(data, folder, truth, args.cap_s, correct_dependence=name == "ours_init")
        else:
            result = run_ours(data / ("config.yaml" if name == "ours_cli" else "spec.yaml"), folder, truth, args.cap_s)
        result.update(load_avg_before=before, load_avg_after=load_average())
        log.info("%d rows, %s: %s s, %s GB, cluster F1 %s", rows, name, result.get("wall_s"),
                 result.get("peak_rss_gb"), result.get("cluster_f1"))
        results[name] = result
        save()


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def cost_growth(sizes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per run, time and memory ratios between consecutive sizes (``"100000/20000"``); None unless both completed."""
    ordered = sorted(sizes, key=int)
    growth: dict[str, dict[str, Any]] = {}
    for small, big in zip(ordered, ordered[1:]):
        for name in sizes[big]:
            a, b = sizes[small].get(name, {}), sizes[big][name]
            completed = a.get("wall_s") is not None and b.get("wall_s") is not None  # not failed, capped or skipped
            growth.setdefault(name, {})[f"{big}/{small}"] = {
                "rows_ratio": round(int(big) / int(small), 3),
                "time_ratio": _ratio(b.get("wall_s"), a.get("wall_s")) if completed else None,
                "memory_ratio": _ratio(b.get("peak_rss_gb"), a.get("peak_rss_gb")) if completed else None,
            }
    return growth


def markdown(report: dict[str, Any]) -> str:
    """The results as Markdown tables: one row per size and run, then the cost growth."""
    lines = ["| rows | run | wall s | peak RSS GB | pairs | pairwise F1 | cluster F1 | largest cluster | largest true | load avg |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for size, runs in report["sizes"].items():
        for name, r in runs.items():
            wall = r.get("wall_s") if r.get("wall_s") is not None else (
                f"capped at {r['capped_s']}" if r.get("capped_s") else r.get("skipped") or r.get("error"))
            lines.append(f"| {int(size):,} | {name} | {wall} | {r.get('peak_rss_gb', '-')} | {r.get('pairs', '-')} | "
                         f"{r.get('pairwise_f1', '-')} | {r.get('cluster_f1', '-')} | {r.get('largest_cluster', '-')} | "
                         f"{r.get('largest_true_entity', '-')} | {r.get('load_avg_before', '-')} |")
    lines += ["", "| run | sizes | rows x | time x | memory x |", "|---|---|---:|---:|---:|"]
    for name, steps in report["cost_growth"].items():
        for step, g in steps.items():
            lines.append(f"| {name} | {step} | {g['rows_ratio']} | {g['time_ratio']} | {g['memory_ratio']} |")
    return "\n".join(lines)


def _start_report(earlier: Path | None) -> dict[str, Any]:
    """A new report (machine, checkout, load), or with ``--append`` the one in ``earlier``: its sizes and runs are
    kept unless measured again, and the machine, checkout and load of each call are listed in ``calls``."""
    call = {"machine": machine(), "source_version": source_version(), "load_average": load_average()}
    if earlier is not None and earlier.exists():
        report = json.loads(earlier.read_text(encoding="utf-8"))
        report.setdefault("calls", []).append(call)
        return report
    return {**call, "calls": [call], "definitions": {"pairwise_f1": PAIRWISE_DEFINITION, "cluster_f1": CLUSTER_DEFINITION},
            "sizes": {}}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="100000,250000,1000000", help="comma-separated sizes (default 100000,250000,1000000)")
    parser.add_argument("--out", metavar="FILE.json", help="where to write the results")
    parser.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated, in order (default: {','.join(RUNS)})")
    parser.add_argument("--workdir", default=str(DEFAULT_WORKDIR), help=f"generated data and run folders (default {DEFAULT_WORKDIR})")
    parser.add_argument("--sources", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stock-cap-rows", type=int, default=250_000, help="skip splink_spark_stock above this size (default 250000)")
    parser.add_argument("--cap-s", type=float, default=900.0, help="stop a run after this many seconds (default 900)")
    parser.add_argument("--append", action="store_true", help="add the sizes and runs measured to the report already in --out (a run measured again replaces its entry)")
    parser.add_argument("--memory", default="4g", help="Spark driver memory of the stock runs (default 4g)")
    parser.add_argument("--one", choices=STOCK_RUNS, help=argparse.SUPPRESS)  # the stock runs' subprocess entry
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.one:
        folder = Path(args.folder)
        result = _stock_child(args.one, Path(args.config), folder, args.memory)
        (folder / "result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        return 0
    if not args.out:
        print("bench scale: error: --out is required", file=sys.stderr)
        return 2
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    if unknown := [r for r in runs if r not in RUNS]:
        print(f"bench scale: error: unknown run(s) {', '.join(unknown)} (expected: {', '.join(RUNS)})", file=sys.stderr)
        return 2
    out = Path(args.out)
    report = _start_report(out if args.append else None)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        report["cost_growth"] = cost_growth(report["sizes"])
        report["load_average_after"] = load_average()
        out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    for rows in (int(r) for r in args.rows.split(",")):
        data = dataset(rows, Path(args.workdir), args.sources, args.seed)
        run_one_size(rows, data, runs, args, report["sizes"].setdefault(str(rows), {}), save)
    report["sizes"] = dict(sorted(report["sizes"].items(), key=lambda item: int(item[0])))
    save()
    print(markdown(report))
    failed = [n for size in report["sizes"].values() for n, r in size.items() if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
