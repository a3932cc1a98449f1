"""``python -m bench DATASET --out FILE.json``: matcher against stock Splink, side by side.

In one process and one SparkSession it runs, on the same data and the same model spec
(``configs/DATASET.yaml``):

* ``ours_spark``: :func:`matcher.pipeline.run_task` (retrain) into a fresh run folder;
* ``splink_spark_stock``: stock Splink 5 on the same SparkSession (:mod:`bench.stock`);
* ``splink_duckdb``: stock Splink 5 on DuckDB with pandas inputs.

Each run is timed from reading the input files to having clusters, training included
(for ``ours_spark`` that also covers writing the matches and pairs as Parquet; its
evaluation is not timed). A small untimed Spark job over the inputs runs first so no
run pays the JVM's warm-up alone. Accuracy comes from :mod:`matcher.evaluation.metrics` for all
three. The JSON written to ``--out`` holds the machine, every run's time and metrics,
``speedup_vs_stock`` (stock Spark time / ours) and ``ratio_vs_duckdb`` (ours / DuckDB).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Sequence

from bench.datasets import DATASETS, ROOT, prepare
from bench.environment import load_average, machine, source_version, warm_up
from matcher.runtime.logs import configure_logging

log = logging.getLogger("bench")

RUNS = ("ours_spark", "splink_spark_stock", "splink_duckdb")

SUBCOMMANDS = {
    "incremental": "bench.incremental",  # incremental vs full matching
    "auto": "bench.auto",  # hand-written vs automatic setup on every data set
    "serve": "bench.serve",  # matcher serve against a large run, concurrent clients
    "standalone": "bench.standalone",  # the same run on a local Spark standalone cluster and in local mode
    "review": "bench.review",  # the review page's state over a large run
    "scale": "bench.scale",  # cost and accuracy at growing sizes, each run in its own process
    "joins": "bench.joins",  # candidate generation's two joins, as written before and now
}
"""``python -m bench NAME ...`` runs module ``SUBCOMMANDS[NAME]``'s ``main``."""


def _flatten(metrics: dict) -> dict[str, Any]:
    """The headline figures of :func:`matcher.evaluation.metrics.evaluate`'s output, plus the details."""
    pw, cl = metrics["pairwise"], metrics["clusters"]
    return {
        "pairwise_precision": pw["precision"],
        "pairwise_recall": pw["recall"],
        "pairwise_f1": pw["f1"],
        "cluster_precision": cl["precision"],
        "cluster_recall": cl["recall"],
        "cluster_f1": cl["f1"],
        "blocking_recall": metrics["blocking_recall"],
        "auprc": pw["auprc"],
        "true_pairs": metrics["true_pairs"],
        "pairwise": pw,
        "clusters": cl,
    }


def run_ours(spark, config, workdir: Path, label: str = "ours_spark") -> dict[str, Any]:
    """``run_task(..., retrain=True)`` into a fresh run folder under ``workdir/label``; time and metrics."""
    from matcher.pipeline import run_task
    from matcher.runtime.run_folder import run_folder

    folder = run_folder(config, workdir / label)
    started = time.perf_counter()
    metrics = run_task(config, folder, spark, retrain=True)
    with_evaluation = time.perf_counter() - started
    timings = metrics["timings_s"]
    result = {
        "wall_s": round(timings["train"] + timings["match_total"], 3),
        "wall_s_with_evaluation": round(with_evaluation, 3),
        "n_pairs": metrics["n_pairs"],
        "n_clusters": metrics["n_clusters"],
        "timings_s": timings,
    }
    if "pairwise" in metrics:
        result.update(_flatten(metrics))
    model_meta = folder.model / "metadata.json"
    if model_meta.exists():
        result["training_timings_s"] = json.loads(model_meta.read_text(encoding="utf-8")).get("timings_s")
    return result


def run_stock(name: str, spark, config, workdir: Path) -> dict[str, Any]:
    from bench import stock
    from matcher.evaluation.metrics import evaluate
    from matcher.matching.threshold import resolve_threshold

    if name == "splink_spark_stock":
        checkpoints = workdir / "splink_spark_stock" / "_checkpoints"
        checkpoints.mkdir(parents=True, exist_ok=True)
        outcome = stock.splink_spark_stock(spark, config, checkpoints)
    else:
        outcome = stock.splink_duckdb(spark, config)
    pairs = outcome.pairs.cache()
    rows = outcome.rows.cache()
    result = {
        "wall_s": round(outcome.wall_s, 3),
        "n_pairs": pairs.count(),
        "n_clusters": rows.select("match_id").distinct().count(),
        "timings_s": {k: round(v, 3) for k, v in outcome.timings_s.items()},
    }
    if config.truth_column:
        metrics = evaluate(
            rows,
            pairs,
            truth=config.truth_column,
            threshold=resolve_threshold(config, None).match_probability,
            link_type=config.resolved_link_type,
        )
        result.update(_flatten(metrics))
    pairs.unpersist()
    rows.unpersist()
    return result


def _timed_run(name: str, spark, config, workdir: Path) -> dict[str, Any]:
    """One run with the machine's load around it; a failure is recorded, not raised."""
    load_before = load_average()
    log.info("%s: starting (load average %s)", name, load_before)
    try:
        result = run_ours(spark, config, workdir) if name == "ours_spark" else run_stock(name, spark, config, workdir)
    except Exception as err:  # noqa: BLE001 - one failed run should not hide the others
        log.error("%s failed: %s", name, err)
        result = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
    result["load_avg_before"] = load_before
    result["load_avg_after"] = load_average()
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", choices=list(DATASETS))
    parser.add_argument("--out", required=True, metavar="FILE.json", help="where to write the results")
    parser.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated, in order (default: {','.join(RUNS)})")
    parser.add_argument("--config", metavar="PATH", help="transform config (default: configs/DATASET.yaml)")
    parser.add_argument("--workdir", metavar="DIR", help="keep run folders here (default: a temporary folder, removed)")
    parser.add_argument("--memory", default="4g", help="Spark driver memory (default 4g)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="run the whole sequence this many times and keep each run's fastest round, so no run "
                        "alone pays the JVM's warm-up of the comparison code (default 2)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] and argv[0] in SUBCOMMANDS:
        return importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:])
    args = build_parser().parse_args(argv)
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    unknown = [r for r in runs if r not in RUNS]
    if unknown:
        print(f"bench: error: unknown run(s) {', '.join(unknown)} (expected: {', '.join(RUNS)})", file=sys.stderr)
        return 2
    configure_logging(logging.INFO)

    from matcher.config.transform import load_config
    from matcher.runtime.session import get_session

    prepare(args.dataset)
    config = load_config(args.config or ROOT / "configs" / f"{args.dataset}.yaml")
    spark = get_session(memory=args.memory)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix=f"bench-{args.dataset}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    warm_up(spark, config)

    results: dict[str, Any] = {}
    try:
        for round_number in range(1, args.rounds + 1):
            for name in runs:
                result = _timed_run(name, spark, config, workdir)
                log.info("round %d, %s: %s s", round_number, name, result.get("wall_s"))
                previous = results.get(name)
                rounds = [*(previous or {}).get("wall_s_rounds", []), result.get("wall_s")]
                if previous is None or "error" in previous or ("error" not in result and result["wall_s"] < previous["wall_s"]):
                    results[name] = result
                results[name]["wall_s_rounds"] = rounds
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    for name, r in results.items():
        if "error" not in r:
            log.info("%s: best %.1f s of %s, pairwise F1 %s, cluster F1 %s",
                     name, r["wall_s"], r["wall_s_rounds"], r.get("pairwise_f1"), r.get("cluster_f1"))

    def wall(name: str) -> float | None:
        return results.get(name, {}).get("wall_s")

    ours, stock_spark, duck = wall("ours_spark"), wall("splink_spark_stock"), wall("splink_duckdb")
    report = {
        "dataset": args.dataset,
        "config": config.name,
        "machine": machine(spark),
        "source": source_version(),
        "rounds": args.rounds,
        "runs": results,
        "speedup_vs_stock": round(stock_spark / ours, 3) if ours and stock_spark else None,
        "ratio_vs_duckdb": round(ours / duck, 3) if ours and duck else None,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    summary = {k: {m: v.get(m) for m in ("wall_s", "pairwise_f1", "cluster_f1", "error")} for k, v in results.items()}
    print(json.dumps({"speedup_vs_stock": report["speedup_vs_stock"], "ratio_vs_duckdb": report["ratio_vs_duckdb"], **summary}, indent=2))
    return 0 if all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
