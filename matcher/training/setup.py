"""Automatic model setup: the rules a config leaves to the data, chosen before training.

A config may leave out ``blocking_rules`` and the ``training`` rules (or write ``auto``).
:func:`automatic_setup` chooses them (:mod:`matcher.blocking.auto`,
:mod:`matcher.training.sessions`) and returns the config with them filled in; training
records the choice in the model's metadata (``setup``) and every later task reads it
back from there (:meth:`matcher.model.artifact.TrainedModel.configure`), so a model is
always used with the rules it was trained with.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame

from matcher.blocking.auto import choose_blocking_rules, rule_estimates
from matcher.config.transform import AUTO, TransformConfig
from matcher.training.sessions import choose_training_rules

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Setup:
    """The config with its automatic parts chosen, and the JSON record of the choice (empty if none)."""

    config: TransformConfig
    report: dict[str, Any] = field(default_factory=dict)


def automatic_setup(
    df: DataFrame, config: TransformConfig, labels: pd.DataFrame | None = None, profile: dict[str, dict[str, float]] | None = None,
) -> Setup:
    """Choose the blocking and training rules ``config`` leaves to the data (``df`` as training reads it).

    ``labels`` (labeled pairs: ``id_l``, ``id_r``, ``is_match``) measure the blocking rules'
    recall on the labeled matches instead of estimating it; ``profile`` is ``df``'s
    :func:`~matcher.training.column_checks.column_profile` when already counted."""
    if not config.automatic:
        return Setup(config)
    chosen: dict[str, Any] = {}
    report: dict[str, Any] = {"automatic": config.automatic}
    if config.blocking_rules == AUTO:
        blocking = choose_blocking_rules(df, config, labels=labels)
        chosen["blocking_rules"], candidates = blocking.rules, blocking.candidates
        report["blocking"] = blocking.report
    else:
        candidates = rule_estimates(df, config)
    if AUTO in (config.training.deterministic_rules, config.training.em_blocking_rules):
        training = choose_training_rules(df, config, candidates, profile)
        chosen["training"] = training.as_training()
        report["training"] = training.report
    report["chosen"] = chosen
    return Setup(config.resolved(chosen.get("blocking_rules"), chosen.get("training")), report)
