"""Turn a :class:`~matcher.config.TransformConfig` into a Splink settings dictionary.

Each comparison kind maps to one Splink comparison (its levels are Splink's):

=========  =================================================================
kind       levels
=========  =================================================================
name       exact, Jaro-Winkler > 0.92 / 0.88 / 0.70, else
date       exact, Levenshtein <= 1, within 1 month / 1 year / 10 years, else
           (ISO ``yyyy-MM-dd`` strings, parsed once per record by :func:`comparable`;
           unparseable dates count as null)
email      exact, exact username, Jaro-Winkler on username, else
phone      exact, Levenshtein <= 1 / 2, else
postcode   exact, sector, district, area (UK-style prefixes), else
exact      exact, else
numeric    exact, absolute difference <= 1 / 10, else
text       exact, Jaro-Winkler > 0.90 / 0.70, else
=========  =================================================================
Every comparison has a null level first. ``term_frequency: true`` adjusts the exact
level for how common the value is; ``name`` and ``email`` comparisons always do (Splink's
defaults for them).
"""

from __future__ import annotations

from typing import Any, Callable

import splink.comparison_level_library as cll
import splink.comparison_library as cl
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from splink import SettingsCreator, block_on
from splink.internals.comparison_creator import ComparisonCreator

from matcher.config import BlockingRule, ColumnSpec, ComparisonKind, TransformConfig

SOURCE_DATASET_COLUMN = "source_dataset"


def _numeric(col: str) -> ComparisonCreator:
    return cl.CustomComparison(
        output_column_name=col,
        comparison_levels=[
            cll.NullLevel(col),
            cll.ExactMatchLevel(col),
            cll.AbsoluteDifferenceLevel(col, 1),
            cll.AbsoluteDifferenceLevel(col, 10),
            cll.ElseLevel(),
        ],
        comparison_description=f"{col}: exact, within 1, within 10",
    )


_CREATORS: dict[ComparisonKind, Callable[[str], ComparisonCreator]] = {
    ComparisonKind.name: cl.NameComparison,
    ComparisonKind.date: lambda c: cl.DateOfBirthComparison(c, input_is_string=False),
    ComparisonKind.email: cl.EmailComparison,
    ComparisonKind.phone: lambda c: cl.LevenshteinAtThresholds(c, [1, 2]),
    ComparisonKind.postcode: cl.PostcodeComparison,
    ComparisonKind.exact: cl.ExactMatch,
    ComparisonKind.numeric: _numeric,
    ComparisonKind.text: lambda c: cl.JaroWinklerAtThresholds(c, [0.9, 0.7]),
}


def comparable(df: DataFrame, config: TransformConfig) -> DataFrame:
    """The rows as Splink compares them: date columns parsed to dates once per record.

    Parsing once here, instead of in every comparison level of every pair, is most of
    what a date comparison costs.
    """
    dates = {c.name for c in config.columns if c.kind is ComparisonKind.date}
    return df.select(*(F.to_date(c, "yyyy-MM-dd").alias(c) if c in dates else F.col(c) for c in df.columns))


def comparison_for(column: ColumnSpec) -> ComparisonCreator:
    """The Splink comparison for one configured column."""
    creator = _CREATORS[column.kind](column.name)
    if column.term_frequency:
        creator = creator.configure(term_frequency_adjustments=True)
    return creator


def blocking_rule(rule: BlockingRule) -> Any:
    """A column list becomes ``block_on(...)``; a string is Splink SQL used as is."""
    return block_on(*rule) if isinstance(rule, list) else rule


def splink_settings(config: TransformConfig) -> SettingsCreator:
    """The untrained Splink model that the configuration describes."""
    return SettingsCreator(
        link_type=config.resolved_link_type,
        unique_id_column_name=config.primary_key,
        source_dataset_column_name=SOURCE_DATASET_COLUMN,
        comparisons=[comparison_for(c) for c in config.columns],
        blocking_rules_to_generate_predictions=[blocking_rule(r) for r in config.active_blocking_rules],
        retain_matching_columns=True,
        retain_intermediate_calculation_columns=True,
        em_convergence=config.training.em_convergence,
        max_iterations=config.training.max_iterations,
        additional_columns_to_retain=[config.truth_column] if config.truth_column else [],
    )
