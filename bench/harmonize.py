"""``python -m bench.harmonize --out FILE.json``: multi-source harmonization on pseudopeople data.

Two scenarios, each a ``sources:`` config run end to end by :func:`matcher.pipeline.run_task`
(ingest → standardize → quality gate → train → match → golden) with a fresh model:

* ``census_2020_2040`` (``configs/pseudopeople_census.yaml``): the decennial census of
  2020, 2030 and 2040 (the sample years pseudopeople ships) as three sources;
* ``census_ssa_w2`` (``configs/pseudopeople.yaml``): census 2020 + Social Security +
  W-2/1099 — the same simulated people in three schemas.

Data come from the ``pseudopeople`` package's bundled sample population (offline,
deterministic per seed) with every row and cell noise probability multiplied by
``--noise-scale`` (default 5, capped at 0.95), written once to ``data/bench/pseudopeople/``
(``python -m bench.harmonize --prepare`` only writes them). ``simulant_id`` is the truth.

Reported per scenario: the run's metrics (pairwise and cluster precision/recall/F1,
blocking recall), pairwise precision/recall/F1 per source pair (``a|b``, ``a|a`` for
duplicates inside one source), the harmonization counts (``rows_in == rows_matched +
rows_quarantined`` per source; the run fails otherwise) and the time.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from itertools import combinations_with_replacement
from pathlib import Path
from typing import Sequence

import pandas as pd

from bench.datasets import ROOT
from matcher.runtime.logs import configure_logging

log = logging.getLogger("bench.harmonize")

DATA = ROOT / "data" / "bench" / "pseudopeople"
SCENARIOS = {
    "census_2020_2040": ROOT / "configs" / "pseudopeople_census.yaml",
    "census_ssa_w2": ROOT / "configs" / "pseudopeople.yaml",
}
FILES = ("census_2020", "census_2030", "census_2040", "ssa", "w2")
MAX_PROBABILITY = 0.95


def scaled_noise(config: dict, scale: float) -> dict:
    """pseudopeople's noise configuration with every row and cell probability times ``scale``."""
    def walk(node):
        if not isinstance(node, dict):
            return node
        return {
            k: min(v * scale, MAX_PROBABILITY) if k in ("cell_probability", "row_probability") and isinstance(v, (int, float)) else walk(v)
            for k, v in node.items()
        }

    return walk(config)


def _frames(scale: float, seed: int) -> dict[str, pd.DataFrame]:
    import pseudopeople as psp

    defaults = psp.get_config()
    noise = {name: scaled_noise(defaults[name], scale) for name in ("decennial_census", "social_security", "taxes_w2_and_1099")}
    frames = {f"census_{y}": psp.generate_decennial_census(seed=seed, year=y, config={"decennial_census": noise["decennial_census"]})
              for y in (2020, 2030, 2040)}
    frames["ssa"] = psp.generate_social_security(seed=seed, year=None, config={"social_security": noise["social_security"]})
    frames["w2"] = psp.generate_taxes_w2_and_1099(seed=seed, year=2020, config={"taxes_w2_and_1099": noise["taxes_w2_and_1099"]})
    return frames


def prepare(scale: float = 5.0, seed: int = 0) -> list[Path]:
    """Write the five pseudopeople tables (strings, a ``row_id`` key) unless they exist."""
    paths = [DATA / f"{name}.parquet" for name in FILES]
    if all(p.exists() for p in paths):
        return paths
    DATA.mkdir(parents=True, exist_ok=True)
    for name, frame in _frames(scale, seed).items():
        out = frame.reset_index(drop=True).astype("string").astype(object)
        out = out.where(out.notna(), None)
        out.insert(0, "row_id", range(len(out)))
        out.to_parquet(DATA / f"{name}.parquet", index=False)
    (DATA / "README.txt").write_text(
        f"Written by `python -m bench.harmonize --prepare` from pseudopeople's sample data "
        f"(BSD-3-Clause), seed {seed}, noise x{scale}.\n", encoding="utf-8")
    return paths


SURVEYS = ("acs", "cps")


def prepare_surveys(scale: float = 5.0, seed: int = 0) -> list[Path]:
    """Write pseudopeople's American Community Survey and Current Population Survey (every
    sample year) like :func:`prepare`, unless they exist: cell noise times ``scale``, row noise
    (non-response) at pseudopeople's defaults, since CPS's 29% non-response times 5 would drop
    95% of its rows. Used by ``python -m bench auto``'s ``census_acs_cps`` set."""
    paths = [DATA / f"{name}.parquet" for name in SURVEYS]
    if all(p.exists() for p in paths):
        return paths
    import pseudopeople as psp

    defaults = psp.get_config()
    generators = {"acs": ("american_community_survey", psp.generate_american_community_survey),
                  "cps": ("current_population_survey", psp.generate_current_population_survey)}
    DATA.mkdir(parents=True, exist_ok=True)
    for name, (dataset, generate) in generators.items():
        noise = {**scaled_noise(defaults[dataset], scale), "row_noise": defaults[dataset]["row_noise"]}
        frame = generate(seed=seed, year=None, config={dataset: noise})
        out = frame.reset_index(drop=True).astype("string").astype(object)
        out = out.where(out.notna(), None)
        out.insert(0, "row_id", range(len(out)))
        out.to_parquet(DATA / f"{name}.parquet", index=False)
    return paths


def per_source_pair(spark, folder: Path, truth: str, threshold: float) -> dict[str, dict]:
    """Pairwise precision/recall/F1 for every pair of sources, from the written matches and pairs."""
    from pyspark.sql import functions as F

    rows = spark.read.parquet(str(folder / "matches"))
    pairs = spark.read.parquet(str(folder / "pairs"))
    sources = sorted(r[0] for r in rows.select("source_system").distinct().collect())
    counts = rows.where(F.col(truth).isNotNull()).groupBy(truth, "source_system").count().toPandas()
    wide = counts.pivot(index=truth, columns="source_system", values="count").fillna(0)
    src = lambda c: F.substring_index(F.col(c), ":", 1)  # noqa: E731 - record ids are <source>:<key>
    predicted = (
        pairs.where(F.col("match_probability") >= threshold)
        .select(F.least(src("record_id_l"), src("record_id_r")).alias("a"), F.greatest(src("record_id_l"), src("record_id_r")).alias("b"),
                (F.col(f"{truth}_l") == F.col(f"{truth}_r")).alias("true"))
        .groupBy("a", "b").agg(F.count(F.lit(1)).alias("n"), F.sum(F.col("true").cast("int")).alias("tp"))
        .toPandas()
    )
    out = {}
    for a, b in combinations_with_replacement(sources, 2):
        ca, cb = wide.get(a, pd.Series(dtype=float)), wide.get(b, pd.Series(dtype=float))
        actual = float((ca * (ca - 1) / 2).sum()) if a == b else float((ca * cb).sum())
        hit = predicted[(predicted.a == a) & (predicted.b == b)]
        n, tp = float(hit.n.sum()), float(hit.tp.sum())
        precision = tp / n if n else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[f"{a}|{b}"] = {"true_pairs": int(actual), "predicted": int(n), "tp": int(tp),
                           "precision": precision, "recall": recall, "f1": f1}
    return out


def run_scenario(spark, name: str, config_path: Path) -> dict:
    from matcher.config.transform import load_config
    from matcher.pipeline import run_task
    from matcher.runtime.run_folder import RunFolder

    config = load_config(config_path)
    folder = RunFolder(Path(tempfile.mkdtemp(prefix=f"bench-{name}-")))
    try:
        started = time.perf_counter()
        metrics = run_task(config, folder, spark, retrain=True)
        seconds = time.perf_counter() - started
        pairs = per_source_pair(spark, folder.root, config.truth_column, metrics["threshold_match_probability"])
    finally:
        shutil.rmtree(folder.root, ignore_errors=True)
    h = metrics["harmonization"]
    reconciled = all(c["rows_in"] == c["rows_matched"] + c["rows_quarantined"] for c in h["sources"].values())
    return {
        "config": str(config_path.relative_to(ROOT)),
        "seconds": round(seconds, 1),
        "rows_reconcile": reconciled,
        "harmonization": h,
        "pairwise": metrics["pairwise"],
        "clusters": metrics["clusters"],
        "blocking_recall": metrics["blocking_recall"],
        "per_source_pair": pairs,
        "timings_s": metrics["timings_s"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.harmonize", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the results JSON here")
    parser.add_argument("--scenario", choices=list(SCENARIOS), action="append", help="run only these (repeatable)")
    parser.add_argument("--noise-scale", type=float, default=5.0)
    parser.add_argument("--prepare", action="store_true", help="only write the data files")
    args = parser.parse_args(argv)
    configure_logging("INFO")
    prepare(args.noise_scale)
    if args.prepare:
        return 0
    from matcher.runtime.session import get_session

    spark = get_session(checkpoint_dir=tempfile.mkdtemp(prefix="bench-checkpoints-"))
    results = {"noise_scale": args.noise_scale, "cores": spark.sparkContext.defaultParallelism, "scenarios": {}}
    for name in args.scenario or list(SCENARIOS):
        results["scenarios"][name] = run_scenario(spark, name, SCENARIOS[name])
        s = results["scenarios"][name]
        print(f"{name}: pairwise F1 {s['pairwise']['f1']:.4f} (P {s['pairwise']['precision']:.4f}, R {s['pairwise']['recall']:.4f}), "
              f"cluster F1 {s['clusters']['f1']:.4f}, rows reconcile: {s['rows_reconcile']}, {s['seconds']} s")
        for pair, m in s["per_source_pair"].items():
            print(f"  {pair}: F1 {m['f1']:.4f} (P {m['precision']:.4f}, R {m['recall']:.4f}, {m['true_pairs']} true pairs)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
