"""``python -m bench incremental --out FILE.json``: incremental matching against a full re-match.

historical_50k (or the inputs of ``--config``, every source of a ``sources:`` config) is
split deterministically: a record is *new* when the CRC-32 of its primary key is divisible
by 100 (about 1%), the others are *existing*. In one process and one SparkSession:

1. (untimed set-up) train on the existing 99% and match them: the existing run folder
   (reused when ``--workdir`` already holds it: ``existing_run_reused``);
2. ``full``: :func:`matcher.pipeline.match_task` on 100% of the records with that same
   trained model — a full re-match, the strict comparison (no training);
3. ``incremental``: :func:`matcher.incremental.task.match_incremental_task` with the existing
   run and the 1% new records (scored in the driver by Splink on DuckDB, the default);
   ``incremental_spark_scoring``: the same with ``incremental.scoring: spark``;
4. ``full_with_training`` (unless ``--no-training-run``): train on 100% and match, what
   a user without incremental matching would otherwise run.

Each timed run reports its wall clock from start to the written run folder
(``match_total`` of its summary). ``full`` and both incremental runs run ``--rounds`` times,
alternating, and keep their fastest round. ``same_clustering`` compares the partition of
records of ``full`` and ``incremental`` (ids may differ, as :mod:`matcher.incremental.task`
explains); ``id_differences`` counts the clusters named differently.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import shutil
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from bench.datasets import ROOT, prepare
from bench.environment import load_average, machine, source_version, warm_up
from matcher.runtime.logs import configure_logging

log = logging.getLogger("bench.incremental")

DATASET = "historical_50k"


def is_new(key: Any, modulus: int = 100) -> bool:
    """The split's rule: a record is new when the CRC-32 of its primary key (as text) is divisible by ``modulus``."""
    return key is not None and zlib.crc32(str(key).encode()) % modulus == 0


def split(source: Path, key: str, fmt: str, existing: Path, new: Path) -> dict[str, int]:
    """Write ``source``'s rows to ``existing`` and ``new`` by :func:`is_new` of column ``key``, in
    ``source``'s format: Parquet through Arrow, CSV and JSON lines row by row (a CSV row's
    fields are written back as read, so every value reads as before)."""
    if fmt == "parquet":
        table = pq.read_table(source)
        fresh = pa.array([is_new(k) for k in table[key].to_pylist()])
        pq.write_table(table.filter(pc.invert(fresh)), existing)
        pq.write_table(table.filter(fresh), new)
        return {"all": table.num_rows, "new": int(pc.sum(fresh).as_py() or 0)}
    counts = {"all": 0, "new": 0}
    with open(source, newline="", encoding="utf-8") as rows, open(existing, "w", newline="", encoding="utf-8") as old, \
            open(new, "w", newline="", encoding="utf-8") as fresh:
        if fmt == "csv":
            reader = csv.reader(rows)
            header = next(reader)
            writers = [csv.writer(old, lineterminator="\n"), csv.writer(fresh, lineterminator="\n")]
            for writer in writers:
                writer.writerow(header)
            position = header.index(key)
            for row in reader:
                added = is_new(row[position] or None)
                writers[added].writerow(row)
                counts["all"], counts["new"] = counts["all"] + 1, counts["new"] + added
        else:  # JSON lines
            for line in rows:
                if line.strip():
                    added = is_new(json.loads(line).get(key))
                    (fresh if added else old).write(line)
                    counts["all"], counts["new"] = counts["all"] + 1, counts["new"] + added
    return counts


def split_inputs(config, workdir: Path):
    """The config's inputs split by :func:`is_new` into ``workdir``: the config that reads the
    existing rows, the new rows' path (a {source: path} map for a ``sources:`` config) and the counts."""
    tables = config.sources if config.sources is not None else config.inputs
    key = config.primary_key
    existing_tables, new_paths, sizes = [], {}, {"all": 0, "existing": 0, "new": 0}
    for table in tables:
        source = Path(table.path)
        existing, new = workdir / f"existing-{source.name}", workdir / f"new-{source.name}"
        counts = split(source, getattr(table, "primary_key", None) or key, table.format, existing, new)
        sizes = {"all": sizes["all"] + counts["all"], "new": sizes["new"] + counts["new"],
                 "existing": sizes["existing"] + counts["all"] - counts["new"]}
        existing_tables.append(table.model_copy(update={"path": str(existing)}))
        new_paths[table.name] = str(new)
    field = "sources" if config.sources is not None else "inputs"
    new_path = new_paths if config.sources is not None else next(iter(new_paths.values()))
    return config.model_copy(update={field: existing_tables}), new_path, sizes


def partition(folder: Path, key: str) -> dict[Any, Any]:
    table = ds.dataset(str(folder), format="parquet").to_table(columns=[key, "match_id"])
    return dict(zip(table[key].to_pylist(), table["match_id"].to_pylist()))


def compare_partitions(full: dict, incremental: dict) -> dict[str, Any]:
    """Whether two record → match_id maps group the records identically, and how many clusters are named differently."""
    same_records = full.keys() == incremental.keys()
    pairs = {(full[r], incremental.get(r)) for r in full}
    full_ids, incremental_ids = set(full.values()), set(incremental.values())
    same = same_records and len(pairs) == len(full_ids) == len(incremental_ids)
    return {
        "same_clustering": same,
        "same_records": same_records,
        "clusters_full": len(full_ids),
        "clusters_incremental": len(incremental_ids),
        "id_differences": sum(1 for a, b in pairs if a != b) if same else None,
    }


def run(out: Path, workdir: Path, *, memory: str, rounds: int, training_run: bool, config_path: Path | None = None) -> dict[str, Any]:
    from matcher.config.transform import load_config
    from matcher.incremental.task import match_incremental_task
    from matcher.pipeline import match_task, run_task, train_task
    from matcher.runtime.run_folder import RunFolder
    from matcher.runtime.session import get_session

    if config_path is None:
        prepare(DATASET)
        config_path = ROOT / "configs" / f"{DATASET}.yaml"
    config_all = load_config(config_path)
    config_existing, new_path, sizes = split_inputs(config_all, workdir)
    spark = get_session(memory=memory)
    if config_all.sources is None:  # a sources: config is warmed up by harmonizing in the existing run's set-up
        warm_up(spark, config_all)

    existing = RunFolder(workdir / "existing")
    started = time.perf_counter()
    reused = existing.summary.exists()  # a --workdir kept from an earlier run already holds it
    if not reused:
        train_task(config_existing, existing, spark)
        match_task(config_existing, existing, spark)
    setup_s = time.perf_counter() - started
    log.info("existing run (train + match on %d rows) in %.1f s", sizes["existing"], setup_s)

    runs: dict[str, dict[str, Any]] = {name: {"wall_s_rounds": []} for name in ("full", "incremental", "incremental_spark_scoring")}
    # the same incremental run with the new records scored by Splink on Spark instead of in the driver
    config_spark_scoring = config_all.model_copy(
        update={"incremental": config_all.incremental.model_copy(update={"scoring": "spark"})})
    for round_number in range(1, rounds + 1):
        _measure(runs["full"], RunFolder(workdir / f"full-{round_number}"),
                 lambda folder: match_task(config_all, folder, spark), model=existing.model)
        _measure(runs["incremental"], RunFolder(workdir / f"incremental-{round_number}"),
                 lambda folder: match_incremental_task(config_all, existing, new_path, folder, spark))
        _measure(runs["incremental_spark_scoring"], RunFolder(workdir / f"incremental-spark-scoring-{round_number}"),
                 lambda folder: match_incremental_task(config_spark_scoring, existing, new_path, folder, spark))
        log.info("round %d: full %.1f s, incremental %.1f s", round_number,
                 runs["full"]["wall_s_rounds"][-1], runs["incremental"]["wall_s_rounds"][-1])
    if training_run:
        folder = RunFolder(workdir / "full_with_training")
        load = load_average()
        metrics = run_task(config_all, folder, spark, retrain=True)
        t = metrics["timings_s"]
        runs["full_with_training"] = {
            "wall_s": round(t["train"] + t["match_total"], 3), "timings_s": t, "n_clusters": metrics["n_clusters"],
            "load_avg_before": load, "load_avg_after": load_average(),
        }
    key = config_all.primary_key
    full_partition = partition(Path(runs["full"].pop("folder")) / "matches", key)
    comparison = compare_partitions(full_partition, partition(Path(runs["incremental"].pop("folder")) / "matches", key))
    spark_scoring_comparison = compare_partitions(
        full_partition, partition(Path(runs["incremental_spark_scoring"].pop("folder")) / "matches", key))
    runs["incremental_spark_scoring"]["same_clustering"] = spark_scoring_comparison["same_clustering"]
    full_s, incremental_s = runs["full"]["wall_s"], runs["incremental"]["wall_s"]
    report = {
        "dataset": DATASET if config_path == ROOT / "configs" / f"{DATASET}.yaml" else str(config_path),
        "split": {**sizes, "rule": "new = crc32(primary key) % 100 == 0"},
        "machine": machine(spark),
        "source": source_version(),
        "rounds": rounds,
        "existing_run_setup_s": round(setup_s, 3),
        "existing_run_reused": reused,
        "runs": runs,
        **comparison,
        "incremental_over_full": round(incremental_s / full_s, 4),
        "incremental_spark_scoring_over_full": round(runs["incremental_spark_scoring"]["wall_s"] / full_s, 4),
        "incremental_over_full_with_training": (
            round(incremental_s / runs["full_with_training"]["wall_s"], 4) if "full_with_training" in runs else None
        ),
        "target_incremental_over_full": 0.10,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    return report


def _measure(slot: dict[str, Any], folder, match: Callable[[Any], dict], *, model: Path | None = None) -> None:
    """Run ``match`` into a fresh ``folder`` (holding a copy of ``model``, when given) and keep it in ``slot`` if fastest."""
    shutil.rmtree(folder.root, ignore_errors=True)
    if model is not None:
        shutil.copytree(model, folder.model)
    load = load_average()
    _keep_best(slot, match(folder), load, folder.root)


def _keep_best(slot: dict[str, Any], summary: dict, load_before, folder: Path) -> None:
    wall = summary["timings_s"]["match_total"]
    slot["wall_s_rounds"].append(wall)
    if "wall_s" not in slot or wall < slot["wall_s"]:
        rounds = slot["wall_s_rounds"]
        slot.clear()
        slot.update({
            "wall_s": wall, "wall_s_rounds": rounds, "timings_s": summary["timings_s"], "n_clusters": summary["n_clusters"],
            "n_pairs": summary["n_pairs"], "load_avg_before": load_before, "load_avg_after": load_average(), "folder": str(folder),
        })
        if "incremental" in summary:
            slot["incremental"] = summary["incremental"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench incremental", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, metavar="FILE.json")
    parser.add_argument("--workdir", metavar="DIR", help="keep run folders here (default: a temporary folder, removed)")
    parser.add_argument("--memory", default="4g", help="Spark driver memory (default 4g)")
    parser.add_argument("--rounds", type=int, default=2, help="full and incremental rounds, alternating; the fastest of each is kept (default 2)")
    parser.add_argument("--no-training-run", action="store_true", help="skip the full_with_training run")
    parser.add_argument("--config", type=Path, metavar="PATH",
                        help=f"split and match this config's inputs or sources instead of {DATASET} "
                             "(e.g. the scale benchmark's runs_N/ours_init.yaml)")
    args = parser.parse_args(argv)
    configure_logging(logging.INFO)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-incremental-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        report = run(Path(args.out), workdir, memory=args.memory, rounds=args.rounds, training_run=not args.no_training_run,
                     config_path=args.config)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps({k: report[k] for k in ("same_clustering", "id_differences", "incremental_over_full")}
                     | {name: r["wall_s"] for name, r in report["runs"].items()}, indent=2))
    return 0 if report["same_clustering"] else 1


if __name__ == "__main__":
    sys.exit(main())
