"""``summary.json``: what a match run (full or incremental) wrote, at which threshold, in how long."""

from __future__ import annotations

from typing import Any

from matcher.config.transform import TransformConfig
from matcher.matching.threshold import Threshold
from matcher.runtime.errors import MatcherError


def run_summary(
    config: TransformConfig, threshold: Threshold, *, rows_in: int, rows_out: int, n_pairs: int, n_clusters: int,
    outputs: dict[str, str], timings_s: dict[str, float], **sections: Any,
) -> dict[str, Any]:
    """The summary of a match run; ``sections`` (``clustering``, ``incremental``, ...) come before ``outputs``.

    The threshold is recorded whole (``threshold``: weight, probability, source) and, for
    the readers of older runs, as ``threshold_match_probability``/``threshold_match_weight``.
    Refuses a run that lost or gained rows (``outputs["matches"]`` names the table).
    """
    if rows_out != rows_in:
        raise MatcherError(f"{outputs['matches']}: {rows_in} rows in but {rows_out} rows out")
    return {
        "config": config.name,
        "rows_in": int(rows_in),
        "rows_out": int(rows_out),
        "n_pairs": int(n_pairs),
        "n_clusters": int(n_clusters),
        "threshold": threshold.as_dict(),
        "threshold_match_probability": threshold.match_probability,
        "threshold_match_weight": threshold.match_weight,
        **sections,
        "outputs": outputs,
        "timings_s": timings_s,
    }
