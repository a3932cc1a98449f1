"""``python -m bench review --out FILE.json``: the review page's state over a large run, as a steward waits for it.

The reference run is ``python -m bench serve``'s (historical_50k grown to ``--rows`` records,
default 1,000,000, kept in ``--workdir``; made with ``matcher run`` when missing). On a copy of
its ``summary.json``, ``matches/`` and ``pairs/`` (the copy is where the decision log goes) this
process measures, in its own clock:

- ``load_s``: reading the run (:class:`~matcher.review.state.ReviewState`), as ``matcher review``
  does before it listens; ``queue_s``: the first queue (uncertainty of every entity);
- ``entity_ms``: one entity page's data (``ReviewState.entity``) for the first ``--entities``
  entities of the queue: median, 95th percentile and maximum, with the largest entity's size;
- ``decision_ms``: a split of the first entity of two or more records, then its undo (each a
  durable append to the log plus the regrouping), and ``queue_after_s``: the queue recomputed;
- ``rss_gb``: this process's peak resident memory (``VmHWM``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.serve import ROOT, _peak_rss_gb, reference_run


def _timed(call) -> tuple[Any, float]:
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def measure(config_path: Path, folder: Path, entities: int) -> dict[str, Any]:
    """The figures in the module docstring for the run in ``folder``."""
    import os

    from matcher.config.transform import load_config
    from matcher.review.state import Action, ReviewState
    from matcher.runtime.run_folder import run_folder

    config = load_config(config_path)
    state, load_s = _timed(lambda: ReviewState(config, run_folder(config, folder)))
    queue, queue_s = _timed(state.queue)
    shown = list(queue["match_id"][:entities])
    times = [_timed(lambda m=m: state.entity(m))[1] * 1000 for m in shown]
    sizes = [len(state.members[m]) for m in shown]
    target = next(m for m in queue["match_id"] if len(state.members[m]) > 1)
    split, split_s = _timed(lambda: state.decide(Action("split", "bench", target, moved=(state.members_of(target)[-1],))))
    _, undo_s = _timed(lambda: state.decide(Action("undo", "bench", undoes=split.decision_id)))
    _, queue_after_s = _timed(state.queue)
    return {
        "records": len(state.records), "pairs": len(state.pairs), "queue_entities": len(queue),
        "load_s": round(load_s, 2), "queue_s": round(queue_s, 2),
        "entity_ms": {"n": len(times), "p50": round(float(np.median(times)), 1),
                      "p95": round(float(np.percentile(times, 95)), 1), "max": round(max(times), 1),
                      "largest_entity": max(sizes)},
        "decision_ms": {"split": round(split_s * 1000, 1), "undo": round(undo_s * 1000, 1)},
        "queue_after_s": round(queue_after_s, 2),
        "rss_gb": _peak_rss_gb(os.getpid()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench review", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, metavar="FILE.json")
    parser.add_argument("--rows", type=int, default=1_000_000, help="reference records (default 1,000,000)")
    parser.add_argument("--entities", type=int, default=50, help="entity pages timed, from the top of the queue (default 50)")
    parser.add_argument("--workdir", default=str(ROOT / "bench" / "results" / "serve"),
                        help="where the reference run is made and kept (shared with bench serve)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    config_path, reference, about = reference_run(args.rows, Path(args.workdir))
    copy = Path(args.workdir).resolve() / f"review_{args.rows}"
    shutil.rmtree(copy, ignore_errors=True)
    for part in ("matches", "pairs", "summary.json"):
        (shutil.copytree if (reference / part).is_dir() else shutil.copy)(reference / part, copy / part)
    try:
        report = {"reference": about, **measure(config_path, copy, args.entities)}
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 0
