"""Turn a :class:`~matcher.config.transform.TransformConfig` into a Splink settings dictionary.

Each comparison kind maps to one Splink comparison (its levels are Splink's):

=========  =================================================================
kind       levels
=========  =================================================================
name       exact, Jaro-Winkler > 0.92 / 0.88 / 0.70, else; with ``swapped_with``, a level after
           exact for the two names written the other way round (``smith john`` vs ``john smith``)
date       exact, Levenshtein <= 1, within 1 month / 1 year / 10 years, else
           (ISO ``yyyy-MM-dd`` strings, parsed once per record by :func:`comparable`;
           unparseable dates count as null)
birth_date as ``date``, plus a level for month and day swapped (same year) after exact:
           ``1990-04-07`` vs ``1990-07-04``, how a form filled in ``dd/mm`` instead of
           ``mm/dd`` (or the reverse) reads
email      exact, exact username, Jaro-Winkler on username, else
phone      exact, Levenshtein <= 1 / 2, else
id_number  as ``phone``: a national id or account number whose digits get mistyped (not a
           contact point: no identifier vertex in the graph)
postcode   by the column's ``format`` (``auto``: decided from the data, :mod:`matcher.model.postcode`):
           ``uk``: exact, sector, district, area (UK-style prefixes), else;
           ``us``: exact, same 5-digit ZIP (ZIP+4 vs ZIP), ZIPs within Levenshtein 1,
           first 3 digits (the sectional centre), else;
           ``digits``: exact, Levenshtein <= 1, all but the last two characters
           (at least 2) equal, else
exact      exact, else
numeric    exact, absolute difference <= 1 / 10, else
text       exact, Jaro-Winkler > 0.90 / 0.70, else
initial    first letters equal, else (a middle name against a middle initial:
           ``nancy`` vs ``n``); no term-frequency adjustment
=========  =================================================================
Every comparison has a null level first. ``term_frequency: true`` adjusts the exact
level for how common the value is; ``name`` and ``email`` comparisons always do (Splink's
defaults for them).
"""

from __future__ import annotations

from typing import Any, Callable

import splink.comparison_level_library as cll
import splink.comparison_library as cl
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from splink import ColumnExpression, SettingsCreator, block_on

from matcher.config.base import SOURCE_DATASET_COLUMN
from matcher.config.transform import DATE_KINDS, BlockingRule, ColumnSpec, ComparisonKind, TransformConfig
from matcher.model.splink_adapter import ComparisonCreator


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


def _date(col: str) -> ComparisonCreator:
    return cl.DateOfBirthComparison(col, input_is_string=False)


def _birth_date(col: str) -> ComparisonCreator:
    """``date``'s levels with "month and day swapped, same year" inserted after exact."""
    null, exact, *rest = _date(col).create_comparison_levels()
    swapped = cll.CustomLevel(
        f"month(`{col}_l`) = dayofmonth(`{col}_r`) AND dayofmonth(`{col}_l`) = month(`{col}_r`) "
        f"AND year(`{col}_l`) = year(`{col}_r`)",
        label_for_charts="Month and day swapped",
        base_dialect_str="spark",
    )
    return cl.CustomComparison(
        output_column_name=col,
        comparison_levels=[null, exact, swapped, *rest],
        comparison_description=f"{col}: exact, month and day swapped, Levenshtein <= 1, within 1 month / 1 year / 10 years",
    )


def _initial(col: str) -> ComparisonCreator:
    first_letter = ColumnExpression(col).substr(1, 1)
    return cl.CustomComparison(
        output_column_name=col,
        comparison_levels=[cll.NullLevel(first_letter), cll.ExactMatchLevel(first_letter), cll.ElseLevel()],
        comparison_description=f"{col}: first letters equal",
    )


def _spark_level(sql: str, label: str) -> ComparisonCreator:
    """A level written in Spark SQL (Splink translates it for DuckDB in driver scoring)."""
    return cll.CustomLevel(sql, label_for_charts=label, base_dialect_str="spark")


def _us_postcode(col: str) -> ComparisonCreator:
    """US ZIP codes: the 5-digit ZIP is compared after removing ``-`` and spaces (``12345-6789`` → ``123456789``)."""

    def zip5(side: str) -> str:
        return f"substr(replace(replace(`{col}_{side}`, '-', ''), ' ', ''), 1, 5)"

    return cl.CustomComparison(
        output_column_name=col,
        comparison_levels=[
            cll.NullLevel(col),
            cll.ExactMatchLevel(col),
            _spark_level(f"{zip5('l')} = {zip5('r')}", "Same 5-digit ZIP"),
            _spark_level(f"levenshtein({zip5('l')}, {zip5('r')}) <= 1", "5-digit ZIPs within Levenshtein 1"),
            _spark_level(f"substr({zip5('l')}, 1, 3) = substr({zip5('r')}, 1, 3)", "First 3 digits equal"),
            cll.ElseLevel(),
        ],
        comparison_description=f"{col}: exact, same ZIP, ZIP Levenshtein <= 1, first 3 digits, else",
    )


def _digits_postcode(col: str) -> ComparisonCreator:
    """Numeric codes (Australia's 4 digits and the like): edit distance, then a shared leading part.

    A level for "all but the last character equal" would add nothing: two codes of one
    length that differ only in the last character are within Levenshtein 1 already.
    """

    def prefix(side: str) -> str:
        value = f"`{col}_{side}`"
        return f"substr({value}, 1, greatest(length({value}) - 2, 2))"

    return cl.CustomComparison(
        output_column_name=col,
        comparison_levels=[
            cll.NullLevel(col),
            cll.ExactMatchLevel(col),
            cll.LevenshteinLevel(col, 1),
            _spark_level(
                f"length(`{col}_l`) = length(`{col}_r`) AND {prefix('l')} = {prefix('r')}",
                "All but the last two characters equal",
            ),
            cll.ElseLevel(),
        ],
        comparison_description=f"{col}: exact, Levenshtein <= 1, all but the last two characters equal, else",
    )


_POSTCODE_CREATORS: dict[str, Callable[[str], ComparisonCreator]] = {
    "uk": cl.PostcodeComparison,
    "us": _us_postcode,
    "digits": _digits_postcode,
}


def _postcode(column: ColumnSpec) -> ComparisonCreator:
    """The levels of the column's postcode format.

    ``auto`` is decided from the data before a model is built
    (:func:`matcher.model.postcode.resolve_formats` when training,
    :meth:`matcher.model.artifact.TrainedModel.configure` after); a config that was not
    resolved (a notebook's ``splink_settings(config)``) gets ``uk``, the levels every
    postcode had before formats existed.
    """
    fmt = column.postcode_format
    return _POSTCODE_CREATORS["uk" if fmt == "auto" else fmt](column.name)


def _swappable_name(col: str, other: str) -> ComparisonCreator:
    """Splink's name levels, with one after exact for ``col`` and ``other`` swapped between the records."""
    null, exact, *closer = cl.NameComparison(col).create_comparison_levels()
    swapped = cll.ColumnsReversedLevel(col, other, symmetrical=True).configure(
        label_for_charts=f"{col} and {other} swapped")
    return cl.CustomComparison(
        output_column_name=col,
        comparison_levels=[null, exact, swapped, *closer],
        comparison_description=f"{col}: Splink's name levels, and {other} swapped after exact",
    )


def _edit_distance(column: str) -> ComparisonCreator:
    return cl.LevenshteinAtThresholds(column, [1, 2])


_CREATORS: dict[ComparisonKind, Callable[[str], ComparisonCreator]] = {
    ComparisonKind.name: cl.NameComparison,
    ComparisonKind.date: _date,
    ComparisonKind.birth_date: _birth_date,
    ComparisonKind.email: cl.EmailComparison,
    ComparisonKind.phone: _edit_distance,
    ComparisonKind.id_number: _edit_distance,
    ComparisonKind.exact: cl.ExactMatch,
    ComparisonKind.numeric: _numeric,
    ComparisonKind.text: lambda c: cl.JaroWinklerAtThresholds(c, [0.9, 0.7]),
    ComparisonKind.initial: _initial,
}


def record_id(config: TransformConfig, suffix: str = "") -> Column:
    """The global record id: the primary key, or ``<input>:<key>`` when there are several inputs.

    With ``sources:`` the primary key is the record id already (``<source>:<key>``),
    whatever the link type."""
    key = F.col(f"{config.primary_key}{suffix}")
    if len(config.inputs) == 1:
        return key
    return F.concat_ws(":", F.col(f"{SOURCE_DATASET_COLUMN}{suffix}"), key.cast("string"))


def comparable(df: DataFrame, config: TransformConfig) -> DataFrame:
    """The rows as Splink compares them: date columns parsed to dates once per record.

    Parsing once here, instead of in every comparison level of every pair, is most of
    what a date comparison costs.
    """
    dates = {c.name for c in config.columns if c.kind in DATE_KINDS}
    return df.select(*(F.to_date(c, "yyyy-MM-dd").alias(c) if c in dates else F.col(c) for c in df.columns))


def comparison_for(column: ColumnSpec) -> ComparisonCreator:
    """The Splink comparison for one configured column (a postcode by its ``format``, ``auto`` read as ``uk``)."""
    if column.kind is ComparisonKind.postcode:
        creator = _postcode(column)
    elif column.swapped_with is not None:
        creator = _swappable_name(column.name, column.swapped_with)
    else:
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
