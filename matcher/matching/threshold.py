"""The run's match threshold, resolved once, and the cut-offs learned from labels.

A pair is a match when its match weight reaches the threshold; the weight ``w`` and the
match probability ``p`` are two forms of one value, ``p = 1 / (1 + 2 ** -w)``.
:func:`resolve_threshold` decides it once per run:

* from the config: ``precision_recall_tradeoff`` asks for weight ``20 * (tradeoff - 0.5)``
  (0.5 is neutral, probability 0.5; 1.0 asks for weight 10, probability 0.999; 0.0
  accepts weight -10, probability 0.001);
* estimated (``threshold: estimated``, the default when training chose the deterministic
  rules): the weight of best expected F-beta under the trained model, computed at training
  from the candidate pairs and stored in the model's metadata with the expected precision
  and recall there (:mod:`matcher.training.calibration`);
* from labels (``labels.threshold_from_labels: true`` and a model trained on labels): the
  weight :func:`best_threshold` learned, stored in the model's metadata. Labels win.

With ``labels.clustering_from_labels`` and average-link clustering, labels also choose
``clustering.min_mean_weight`` at match time (:func:`min_mean_weight_from_labels`), judged
by the F-beta that learns the threshold (:mod:`matcher.training.supervision`). Labeling
sets hold whole groups of records, so their pairs say where clusters should split,
which is what the parameter decides.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Literal, Mapping

import numpy as np
import pandas as pd

from matcher.config.transform import ClusteringSpec, TransformConfig
from matcher.matching.clustering import cluster_by_average_link, cluster_edges
from matcher.model.artifact import TrainedModel
from matcher.training.supervision import f_beta

log = logging.getLogger(__name__)

ThresholdSource = Literal["config", "labels", "estimated"]


def weight_to_probability(weight: float) -> float:
    """The match probability of a match weight (a logistic in base 2)."""
    return 1.0 / (1.0 + 2.0 ** (-weight))


def probability_to_weight(probability: float) -> float:
    """The match weight of a match probability (clamped away from 0 and 1)."""
    probability = min(max(probability, 1e-300), 1 - 1e-16)
    return math.log2(probability / (1.0 - probability))


def tradeoff_weight(precision_recall_tradeoff: float) -> float:
    """The match weight a ``precision_recall_tradeoff`` asks for: ``20 * (tradeoff - 0.5)``."""
    return 20.0 * (precision_recall_tradeoff - 0.5)


@dataclass(frozen=True)
class Threshold:
    """The match weight a pair must reach, its match probability, and where it came from."""

    match_weight: float
    source: ThresholdSource = "config"
    expected_precision: float | None = None  # the model's own estimates at this threshold, when known
    expected_recall: float | None = None

    @property
    def match_probability(self) -> float:
        return weight_to_probability(self.match_weight)

    def as_dict(self) -> dict[str, Any]:
        """The form ``summary.json`` records under ``threshold``."""
        recorded = {"match_weight": self.match_weight, "match_probability": self.match_probability, "source": self.source}
        if self.expected_precision is not None:
            recorded.update(expected_precision=self.expected_precision, expected_recall=self.expected_recall)
        return recorded

    def same_as(self, other: "Threshold") -> bool:
        """Whether both cut the pairs at the same match probability (the form written pairs are compared in)."""
        return abs(self.match_probability - other.match_probability) <= 1e-12

    def __str__(self) -> str:
        expected = (
            f", expected precision {self.expected_precision:.3f} and recall {self.expected_recall:.3f}"
            if self.expected_precision is not None else ""
        )
        return f"match weight {self.match_weight:.4g} (probability {self.match_probability:.6g}, from {self.source}{expected})"

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any]) -> "Threshold | None":
        """The threshold a run's ``summary.json`` recorded (older runs: only ``threshold_match_probability``)."""
        recorded = summary.get("threshold")
        if isinstance(recorded, Mapping) and "match_weight" in recorded:
            precision, recall = recorded.get("expected_precision"), recorded.get("expected_recall")
            return cls(
                float(recorded["match_weight"]), recorded.get("source", "config"),
                None if precision is None else float(precision), None if recall is None else float(recall),
            )
        probability = summary.get("threshold_match_probability")
        return None if probability is None else cls(probability_to_weight(float(probability)))


def threshold_mode(config: TransformConfig, model: TrainedModel | None) -> str:
    """``config.threshold``, or its default: ``estimated`` when the model's training chose the
    deterministic rules (its lambda then comes from the candidates' mixture), else ``weight``."""
    if config.threshold is not None:
        return config.threshold
    automatic = ((model.metadata.get("setup") or {}).get("automatic") or []) if model is not None else []
    return "estimated" if "training.deterministic_rules" in automatic else "weight"


def clustering_spec(config: TransformConfig, model: TrainedModel | None) -> ClusteringSpec:
    """``config.clustering`` with its method decided: the configured one, else ``average_link``
    under an estimated threshold (:func:`threshold_mode`) and ``connected_components`` under any other."""
    spec = config.clustering
    if spec.method is not None:
        return spec
    method = "average_link" if threshold_mode(config, model) == "estimated" else "connected_components"
    return spec.model_copy(update={"method": method})


def resolve_threshold(config: TransformConfig, model: TrainedModel | None) -> Threshold:
    """The run's threshold: the one learned from labels when configured and learned, else the
    estimated one (:func:`threshold_mode`) when the model has it, else the tradeoff's."""
    learned = (model.metadata.get("labels") or {}).get("threshold_match_weight") if model is not None else None
    if config.labels.threshold_from_labels and learned is not None:
        return Threshold(float(learned), "labels")
    if threshold_mode(config, model) == "estimated" and model is not None:
        estimated = model.metadata.get("estimated_threshold")
        if estimated:
            return Threshold(
                float(estimated["match_weight"]), "estimated",
                float(estimated["expected_precision"]), float(estimated["expected_recall"]),
            )
        if config.threshold == "estimated":
            log.warning(
                "the model records no estimated threshold (trained before it was estimated?): using precision_recall_tradeoff's"
            )
    return Threshold(tradeoff_weight(config.precision_recall_tradeoff), "config")


# --- clustering.min_mean_weight from labels -------------------------------------------------


MEAN_WEIGHT_CANDIDATES = tuple(np.arange(-4.0, 4.01, 0.5).round(1))
"""The ``clustering.min_mean_weight`` values tried when learning it from labels."""


def min_mean_weight_from_labels(
    edges: pd.DataFrame, labeled: pd.DataFrame, spec: ClusteringSpec, beta: float,
    candidates: tuple[float, ...] = MEAN_WEIGHT_CANDIDATES,
) -> tuple[float, dict]:
    """The ``min_mean_weight`` whose average-link clusters best reproduce the labeled pairs.

    ``edges`` are :func:`matcher.matching.clustering.component_pairs`' output, ``labeled`` has
    ``id_l``, ``id_r`` (text) and ``is_match``. A labeled pair counts as predicted a
    match when both records land in one cluster; each candidate is scored by F-beta
    over the labeled pairs, ties go to the candidate nearest the configured value. Only
    the components that hold a labeled record are clustered; the labels are not enforced
    while choosing, so they judge the clustering rather than steer it. Returns the value
    and the facts for the run summary (labeled pairs used, F-beta per candidate).
    """
    labeled_ids = set(labeled["id_l"].astype(str)) | set(labeled["id_r"].astype(str))
    links = edges[edges["link"]]
    component = cluster_edges(links[["id_l", "id_r"]])
    wanted = set(component.loc[component["record_id"].astype(str).isin(labeled_ids), "match_id"])
    subset = edges[edges["id_l"].isin(component.loc[component["match_id"].isin(wanted), "record_id"])]
    is_match = labeled["is_match"].to_numpy(bool)
    scores = {}
    for candidate in candidates:
        members = cluster_by_average_link(subset, min_mean_weight=candidate, unscored_pair_weight=spec.unscored_pair_weight)
        cluster = dict(zip(members["record_id"].astype(str), members["match_id"]))
        left = labeled["id_l"].astype(str).map(cluster)
        right = labeled["id_r"].astype(str).map(cluster)
        together = (left.notna() & (left == right)).to_numpy(bool)
        tp, fp = float((together & is_match).sum()), float((together & ~is_match).sum())
        fn = float((~together & is_match).sum())
        scores[float(candidate)] = float(f_beta(tp, fp, fn, beta))
    top = max(scores.values())
    best = min((c for c, f in scores.items() if f == top), key=lambda c: (abs(c - spec.min_mean_weight), c))
    return best, {"labeled_pairs": len(labeled), "beta": beta, "f_beta": {str(c): round(f, 4) for c, f in scores.items()}}


def match_confidence(best: pd.Series | np.ndarray | float, threshold: float) -> np.ndarray:
    """``match_confidence_score`` from each record's best pair probability (:mod:`matcher.matching.matches`):
    that probability when it reaches ``threshold``, else one minus it (1.0 for a record without pairs: NaN)."""
    best = np.asarray(best, dtype="float64")
    return np.where(best >= threshold, best, 1.0 - np.nan_to_num(best, nan=0.0))
