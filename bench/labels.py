"""``python -m bench.labels --out FILE.json``: the labeling workflow, measured.

**(a) fake_1000 clerical labels.** ``data/demo/fake_1000_labels.csv`` (Splink's clerical
pair labels, MIT licence: ``data/LICENSE-splink-datasets``; ``clerical_match_score`` 1
= match) is converted to a FindMatches labeling file (one set of two rows per pair),
imported into a fresh run folder for ``configs/fake_1000.yaml``, and evaluated on the
held-out sets (``labels.holdout_share`` of them, seeded split) three times: with a model
trained without labels, with one whose m comes from the training sets' labels, and with
that model plus the threshold learned from the labels.

**(b) learning curve on historical_50k.** ``configs/historical_50k_wide.yaml`` (wide
blocking, average-link clustering; ``--config`` for another) with every labeling set used
for training (``holdout_share: 0``): round 0 trains without labels;
each further round runs ``label-set`` (around the current model's most uncertain pairs),
labels the sets from the ground truth (a simulated labeler: label = the row's
``cluster``), imports them (append), retrains and matches. Cluster F1 against the
ground truth after 0/10/30/50 sets. ``--threshold-from-labels`` also learns the
threshold from the labels; each round then also reports the same scored pairs clustered
at the ``precision_recall_tradeoff`` threshold (``at_tradeoff_threshold``).
``--clustering-from-labels`` learns average link's ``clustering.min_mean_weight`` from the
labels (``labels.clustering_from_labels``); each round reports the clustering used.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from bench.datasets import ROOT, prepare
from matcher.runtime.logs import configure_logging

log = logging.getLogger("bench.labels")

CURVE = (0, 10, 30, 50)
CURVE_CONFIG = ROOT / "configs" / "historical_50k_wide.yaml"


def _config(path: Path, **updates: Any):
    from matcher.config.transform import config_from_dict, load_config

    base = load_config(path)
    data = base.model_dump(mode="json", exclude_none=True)
    for key, value in updates.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return config_from_dict(data, source=str(path))


def fake_1000_labels(spark, workdir: Path) -> dict:
    """Convert, import, train without and with labels, evaluate on the held-out labels."""
    from matcher.labels.files import sets_from_pair_labels, write_labeling_file
    from matcher.labels.tasks import evaluate_labels_task, import_labels_task
    from matcher.pipeline import match_task, train_task
    from matcher.runtime.run_folder import run_folder

    config = _config(ROOT / "configs" / "fake_1000.yaml")
    folder = run_folder(config, workdir / "fake_1000")
    clerical = pd.read_csv(ROOT / "data" / "demo" / "fake_1000_labels.csv")
    pairs = pd.DataFrame({
        "id_l": clerical["unique_id_l"], "id_r": clerical["unique_id_r"], "is_match": clerical["clerical_match_score"] >= 0.5,
    })
    source = pd.read_csv(config.inputs[0].path, dtype=str, keep_default_na=False)
    findmatches = workdir / "fake_1000_labels_findmatches.csv"
    write_labeling_file(sets_from_pair_labels(pairs, source, config), findmatches)

    out: dict[str, Any] = {"labeled_pairs": len(pairs), "labeled_matches": int(pairs["is_match"].sum())}
    t = time.perf_counter()
    import_labels_task(config, folder, findmatches, spark=spark)
    out["import_s"] = round(time.perf_counter() - t, 2)

    def train_match_evaluate(key: str, trained_with, *, hide_labels: bool = False) -> None:
        """Train (without the stored labels when ``hide_labels``), match, and score the held-out labels into ``out[key]``."""
        t = time.perf_counter()
        stash = workdir / "fake_1000_labels_store"
        if hide_labels:
            shutil.copytree(folder.root / "labels", stash)
            shutil.rmtree(folder.root / "labels")
        train_task(trained_with, folder, spark)
        if hide_labels:
            shutil.copytree(stash, folder.root / "labels")
        match_task(trained_with, folder, spark)
        out[key] = evaluate_labels_task(trained_with, folder, spark)
        out[f"{key}_s"] = round(time.perf_counter() - t, 2)

    # the same held-out sets scored by a model that never saw a label, then by one trained on the rest
    train_match_evaluate("without_labels", _config(ROOT / "configs" / "fake_1000.yaml"), hide_labels=True)
    train_match_evaluate("with_labels", config)
    learned = _config(ROOT / "configs" / "fake_1000.yaml", labels={"threshold_from_labels": True})
    train_match_evaluate("with_labels_and_learned_threshold", learned)
    return out


def _simulated_labels(path: Path, truth: str) -> None:
    """Label a labeling file from the ground truth: every row's label is its truth value."""
    rows = pd.read_csv(path, dtype=str, keep_default_na=False)
    rows["label"] = "t" + rows[truth]
    rows.to_csv(path, index=False, encoding="utf-8")


def _at_threshold(spark, config, folder, threshold) -> dict:
    """Cluster F1 of the run's scored pairs clustered at another threshold."""
    from matcher.evaluation.metrics import evaluate
    from matcher.harmonize.ingest import read_inputs
    from matcher.matching.matches import assign_matches

    spark.sparkContext.setCheckpointDir(str(folder.checkpoints))
    pairs = spark.read.parquet(str(folder.pairs))
    rows, _ = assign_matches(read_inputs(spark, config), pairs, config, threshold)
    probability = threshold.match_probability
    metrics = evaluate(rows.cache(), pairs, truth=config.truth_column, threshold=probability, link_type=config.resolved_link_type)
    return {"threshold_match_probability": probability, "cluster_f1": metrics["clusters"]["f1"],
            "cluster_precision": metrics["clusters"]["precision"], "cluster_recall": metrics["clusters"]["recall"],
            "pairwise_f1": metrics["pairwise"]["f1"]}


def learning_curve(
    spark, workdir: Path, *, threshold_from_labels: bool, enforce: bool, set_size: int, curve: Sequence[int] = CURVE,
    clustering_from_labels: bool = False, config_path: Path = CURVE_CONFIG,
) -> list[dict]:
    """Cluster F1 on historical_50k after 0/10/30/50 labeling sets from label-set rounds."""
    from matcher.labels.tasks import import_labels_task, label_set_task
    from matcher.matching.threshold import resolve_threshold
    from matcher.pipeline import evaluate_task, match_task, train_task
    from matcher.runtime.run_folder import run_folder

    prepare("historical_50k")
    config = _config(config_path,
                     labels={"holdout_share": 0.0, "threshold_from_labels": threshold_from_labels,
                             "enforce_in_clustering": enforce, "clustering_from_labels": clustering_from_labels})
    variant = "threshold" if threshold_from_labels else "enforce" if enforce else "m"
    variant += "_clustering" if clustering_from_labels else ""
    folder = run_folder(config, workdir / f"historical_50k_{variant}")
    rounds = []
    labeled = 0
    for target in curve:
        t = time.perf_counter()
        step: dict[str, Any] = {"sets": target}
        if target > labeled:
            sets_file = workdir / f"sets_{target}.csv"
            t0 = time.perf_counter()
            label_set_task(config, folder, sets_file, sets=target - labeled, set_size=set_size, spark=spark)
            step["label_set_s"] = round(time.perf_counter() - t0, 2)
            _simulated_labels(sets_file, config.truth_column)
            import_labels_task(config, folder, sets_file, spark=spark)
            labeled = target
        t0 = time.perf_counter()
        model = train_task(config, folder, spark)
        step["train_s"] = round(time.perf_counter() - t0, 2)
        match_task(config, folder, spark)
        metrics = evaluate_task(config, folder, spark)
        if threshold_from_labels:
            # the same model and scored pairs, clustered at the precision_recall_tradeoff's threshold
            step["at_tradeoff_threshold"] = _at_threshold(spark, config, folder, resolve_threshold(config, None))
        info = json.loads((folder.root / "labels" / "labels.json").read_text()) if labeled else {}
        supervised = model.metadata.get("labels") or {}
        step.update(
            cluster_f1=metrics["clusters"]["f1"],
            cluster_precision=metrics["clusters"]["precision"],
            cluster_recall=metrics["clusters"]["recall"],
            pairwise_f1=metrics["pairwise"]["f1"],
            auprc=metrics["pairwise"]["auprc"],
            blocking_recall=metrics["blocking_recall"],
            threshold_match_probability=metrics["threshold_match_probability"],
            clustering=metrics.get("clustering"),
            labeled_rows=info.get("rows", 0),
            labeled_pairs=info.get("pairs", 0),
            labeled_match_pairs=info.get("match_pairs", 0),
            learned_threshold_match_weight=supervised.get("threshold_match_weight"),
            round_s=round(time.perf_counter() - t, 2),
        )
        log.info("learning curve: %d sets -> cluster F1 %.4f", target, step["cluster_f1"])
        rounds.append(step)
    return rounds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.labels", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, metavar="FILE.json")
    parser.add_argument("--parts", default="fake_1000,curve", help="comma-separated: fake_1000, curve (default both)")
    parser.add_argument("--threshold-from-labels", action="store_true", help="learning curve also learns the threshold")
    parser.add_argument("--enforce-labels", action="store_true",
                        help="learning curve clusters with the labels enforced (labels.enforce_in_clustering)")
    parser.add_argument("--clustering-from-labels", action="store_true",
                        help="learning curve learns average link's min_mean_weight from the labels (labels.clustering_from_labels)")
    parser.add_argument("--config", type=Path, default=CURVE_CONFIG,
                        help="historical_50k config of the learning curve (default configs/historical_50k_wide.yaml)")
    parser.add_argument("--set-size", type=int, default=10, help="records per labeling set in the curve (default 10)")
    parser.add_argument("--curve", default=",".join(map(str, CURVE)),
                        help="cumulative labeling sets per round (default 0,10,30,50); without 0 the first round "
                        "starts from the model already in the workdir's run folder")
    parser.add_argument("--workdir", metavar="DIR", help="keep run folders here (default: a temporary folder, removed)")
    parser.add_argument("--memory", default="4g")
    args = parser.parse_args(argv)
    configure_logging(logging.INFO)

    from bench.environment import machine, source_version
    from matcher.runtime.session import get_session

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-labels-"))
    workdir.mkdir(parents=True, exist_ok=True)
    spark = get_session(checkpoint_dir=workdir / "_checkpoints", memory=args.memory)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    result: dict[str, Any] = {"machine": machine(spark), "source": source_version(), "load_avg_before": list(os.getloadavg())}
    try:
        if "fake_1000" in parts:
            result["fake_1000_clerical_labels"] = fake_1000_labels(spark, workdir)
        if "curve" in parts:
            result["historical_50k_learning_curve"] = {
                "set_size": args.set_size,
                "threshold_from_labels": args.threshold_from_labels,
                "enforce_in_clustering": args.enforce_labels,
                "clustering_from_labels": args.clustering_from_labels,
                "config": str(args.config),
                "rounds": learning_curve(spark, workdir, threshold_from_labels=args.threshold_from_labels,
                                         enforce=args.enforce_labels, set_size=args.set_size,
                                         clustering_from_labels=args.clustering_from_labels, config_path=args.config,
                                         curve=[int(x) for x in args.curve.split(",")]),
            }
    finally:
        result["load_avg_after"] = list(os.getloadavg())
        Path(args.out).write_text(json.dumps(result, indent=2), encoding="utf-8")
        spark.stop()
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
