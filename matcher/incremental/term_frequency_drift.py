"""Term frequencies of an updated dataset, and already-scored pairs re-weighed for them.

Adding or removing records changes every value's term frequency a little, hence the
term-frequency adjustment of every pair scored at an exact-match level.
:class:`TermFrequencyDrift` applies Splink's formula to stored pairs in the driver, so an
incremental run scores them as a full re-run would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from matcher.model.artifact import TrainedModel


def term_frequency_columns(model: TrainedModel) -> list[str]:
    """The columns whose exact-match level the model adjusts for term frequency."""
    found = [
        level.get("tf_adjustment_column")
        for comparison in model.splink_model.get("comparisons", [])
        for level in comparison.get("comparison_levels", [])
    ]
    return list(dict.fromkeys(c for c in found if c))


def term_frequencies(values: pd.Series) -> pd.DataFrame:
    """Each non-null value's share of the non-null values (what Splink's ``tf_`` columns hold)."""
    counts = values.dropna().value_counts()
    return pd.DataFrame({values.name: counts.index, f"tf_{values.name}": (counts / counts.sum()).to_numpy(dtype="float64")})


def comparison_vector_values(levels: list[dict]) -> dict[int, int]:
    """Each level's ``gamma_`` value (by ``id``), numbered as Splink does: -1 for the null
    level, the others counting down to 0 (the ``ELSE`` level) in their order."""
    values, next_value = {}, sum(1 for level in levels if not level.get("is_null_level")) - 1
    for level in levels:
        if level.get("is_null_level"):
            values[id(level)] = -1
        else:
            values[id(level)], next_value = next_value, next_value - 1
    return values


@dataclass
class TermFrequencyDrift:
    """Re-weigh already-scored pairs for the updated dataset's term frequencies, in the driver.

    Adding or removing records changes every value's term frequency a little, hence the
    term-frequency adjustment of every existing pair scored at an exact-match level. A full
    re-run would score those pairs with the new frequencies; this applies Splink's formula
    (``mw_tf_adj = w * (log2(u_exact) - log2(max(tf_l, tf_r, tf_minimum_u_value)))``,
    ``match_weight = prior + sum of mw_* terms``) to the stored pairs, so the clustering
    equals a full re-run's up to floating-point rounding.
    """

    prior: float
    comparisons: list[tuple[str, str | None]]  # (output column, term-frequency column or None)
    levels: dict[str, tuple[float, dict[int, tuple[float, float]]]]  # tf column -> (log2 u of its exact level, {gamma: (weight, minimum u)})
    lookups: dict[str, tuple[pa.Array, np.ndarray]]  # tf column -> (values, their term frequencies)

    @classmethod
    def of(cls, model: TrainedModel, frequencies: dict[str, pd.DataFrame]) -> "TermFrequencyDrift":
        settings = model.splink_model
        prior = settings["probability_two_random_records_match"]
        comparisons, levels = [], {}
        for comparison in settings["comparisons"]:
            tf_levels = [lvl for lvl in comparison["comparison_levels"] if lvl.get("tf_adjustment_column")]
            column = tf_levels[0]["tf_adjustment_column"] if tf_levels else None
            comparisons.append((comparison["output_column_name"], column))
            if column:
                gammas = comparison_vector_values(comparison["comparison_levels"])
                levels[column] = (math.log2(tf_levels[0]["u_probability"]), {
                    gammas[id(level)]: (float(level.get("tf_adjustment_weight", 1.0)), float(level.get("tf_minimum_u_value", 0.0)))
                    for level in tf_levels})
        lookups = {c: (pa.array(f[c].astype(str).tolist(), type=pa.string()), f[f"tf_{c}"].to_numpy(dtype="float64"))
                   for c, f in frequencies.items()}
        return cls(math.log2(prior / (1 - prior)), comparisons, levels, lookups)

    def columns(self) -> list[str]:
        """The pair columns re-weighing reads and rewrites."""
        needed = ["record_id_l", "record_id_r", "match_weight", "match_probability"]
        for output, column in self.comparisons:
            needed.append(f"mw_{output}")
            if column:
                needed += [f"gamma_{output}", f"mw_tf_adj_{output}", f"tf_{column}_l", f"tf_{column}_r"]
        return needed

    def applies_to(self, schema: pa.Schema) -> bool:
        """Whether the pairs carry what re-weighing needs (Splink's intermediate columns)."""
        return bool(self.levels) and set(self.columns()) <= set(schema.names)

    def _frequency(self, column: str, values: pa.Array) -> np.ndarray:
        """Each value's term frequency (NaN for null or unknown values)."""
        known, frequencies = self.lookups[column]
        positions = pc.index_in(values.cast(pa.string()), value_set=known).to_numpy(zero_copy_only=False).astype("float64")
        found = ~np.isnan(positions)
        out = np.full(len(positions), np.nan)
        out[found] = frequencies[positions[found].astype("int64")]
        return out

    def _sides(self, table: pa.Table, records: pd.DataFrame, key: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per term-frequency column, the new frequency of each pair's left and right record's value.

        The pairs carry record ids, not values (:func:`~matcher.blocking.candidates.score`): each
        record's frequency is looked up once, in ``records`` (its ``key`` and the columns' values).
        """
        ids = pa.array(records[key], from_pandas=True)
        rows = [pc.index_in(table[f"record_id{s}"].cast(ids.type), value_set=ids).to_numpy(zero_copy_only=False) for s in ("_l", "_r")]
        sides = {}
        for column in self.levels:
            of_record = np.append(self._frequency(column, pa.array(records[column], from_pandas=True)), np.nan)
            # a record missing from ``records`` (NaN position) reads the appended NaN
            sides[column] = tuple(of_record[np.nan_to_num(r.astype("float64"), nan=len(ids)).astype("int64")] for r in rows)
        return sides

    def reweigh(self, table: pa.Table, records: pd.DataFrame, key: str) -> pa.Table:
        """``table`` (pairs) with new ``tf_*``, ``mw_tf_adj_*``, ``match_weight`` and ``match_probability``;
        ``records``: the ``key`` and term-frequency columns of every record a pair names."""

        def floats(name: str) -> np.ndarray:
            return table[name].to_numpy(zero_copy_only=False).astype("float64")

        weight = np.full(table.num_rows, self.prior)
        columns: dict[str, np.ndarray] = {}
        frequencies = self._sides(table, records, key)
        for output, column in self.comparisons:
            weight = weight + floats(f"mw_{output}")
            if not column:
                continue
            sides = frequencies[column]
            log2_u, by_gamma = self.levels[column]
            adjusted = floats(f"mw_tf_adj_{output}")
            gamma = table[f"gamma_{output}"].to_numpy(zero_copy_only=False)
            exists = ~(np.isnan(sides[0]) & np.isnan(sides[1]))
            for value, (tf_weight, minimum) in by_gamma.items():
                # by the pair's level, not by a non-zero old adjustment: a value whose frequency
                # was at most the minimum u had none, and may have one now
                applied = (gamma == value) & exists
                with np.errstate(divide="ignore", invalid="ignore"):
                    largest = np.fmax(np.fmax(sides[0], sides[1]), minimum)
                    adjusted = np.where(applied, tf_weight * (log2_u - np.log(largest) / np.log(2.0)), adjusted)
            weight = weight + adjusted
            columns[f"tf_{column}_l"], columns[f"tf_{column}_r"], columns[f"mw_tf_adj_{output}"] = sides[0], sides[1], adjusted
        with np.errstate(over="ignore"):
            probability = np.where(weight >= 0, 1.0 / (1.0 + np.power(2.0, -weight)), np.power(2.0, weight) / (1.0 + np.power(2.0, weight)))
        columns["match_weight"], columns["match_probability"] = weight, probability
        for name, values in columns.items():
            field_ = table.schema.field(name)
            array = pa.array(values, type=pa.float64(), from_pandas=True).cast(field_.type)
            table = table.set_column(table.schema.get_field_index(name), field_, array)
        return table
