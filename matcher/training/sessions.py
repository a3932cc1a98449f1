"""Training rules chosen from the data: the deterministic rules for lambda and the EM sessions.

Every comparison must be estimated by at least one EM session that does not block on
it, so the sessions are picked to cover the comparisons between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame

from matcher.blocking.auto import RuleEstimate
from matcher.config.transform import BlockingRule, TransformConfig


@dataclass(frozen=True)
class TrainingChoice:
    """The chosen training rules and a JSON report of the decision."""

    deterministic_rules: list[BlockingRule]
    em_blocking_rules: list[BlockingRule]
    report: dict[str, Any] = field(default_factory=dict)

    def as_training(self) -> dict[str, Any]:
        """The ``training`` section these rules make (:meth:`TransformConfig.resolved`)."""
        return {"deterministic_rules": self.deterministic_rules, "em_blocking_rules": self.em_blocking_rules}


def choose_training_rules(df: DataFrame, config: TransformConfig, candidates: list[RuleEstimate]) -> TrainingChoice:
    """Deterministic rules: the most selective two-column rules; EM sessions: cover every comparison."""
    usable = sorted((c for c in candidates if c.pairs > 0), key=lambda c: c.pairs)
    deterministic = [c.rule for c in usable if len(c.columns) == 2][:2] or [usable[0].rule]
    sessions: list[RuleEstimate] = []
    uncovered = set(config.column_names)
    for candidate in usable:
        if not uncovered:
            break
        estimated = uncovered - set(candidate.columns)
        if estimated:
            sessions.append(candidate)
            uncovered -= estimated
    report = {"em_sessions": [s.as_json() for s in sessions], "deterministic": list(deterministic)}
    return TrainingChoice(list(deterministic), [s.rule for s in sessions], report)
