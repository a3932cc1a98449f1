"""The review queue: which entities a steward should look at first.

An entity's **uncertainty** is the chance that its current records are not exactly one
customer, read off the run's own pairs:

* held together weakly: one minus the probability of the weakest link that holds a record
  in (each record's strongest link inside the entity, the weakest of those);
* a near miss: the probability of the strongest pair to a record of another entity (the
  pair the threshold, or a cannot-link, left out).

The larger of the two orders the queue; two flags add up to 0.25 each: **large** (``large``
records or more) and **same source** (two records of one source in one entity), weighed by
how unusual that is in this run: one minus the share of the entities holding that source
that hold it twice (a source that is de-duplicated already rarely does; one with many
duplicate accounts often does). Singletons appear only through a near miss.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FLAG_WEIGHT = 0.25
WEAK_LINK = 0.95  # flagged "weakly held" below this weakest link
NEAR_MISS = 0.05  # flagged "near miss" from this probability of a pair to another entity


def uncertainty(state) -> pd.DataFrame:
    """One row per entity worth a look: ``match_id``, ``size``, ``weakest_link``, ``near_miss``,
    ``near_match_id``, ``large``, ``weak``, ``near``, ``same_source``, ``sources``, ``uncertainty``, ``reviewed``; most uncertain first."""
    current = state.current
    labels = current.to_numpy()
    left, right = labels[state.pair_l], labels[state.pair_r]
    probability = state.pair_probability
    inside = left == right
    ends = np.concatenate([state.pair_l[inside], state.pair_r[inside]])
    strongest = np.zeros(len(current))
    np.maximum.at(strongest, ends, np.tile(probability[inside], 2))
    strongest = pd.Series(strongest, index=current.index)
    sizes = current.value_counts()
    entities = pd.DataFrame({"size": sizes})
    entities["weakest_link"] = strongest.groupby(current).min().reindex(entities.index)
    entities.loc[entities["size"] == 1, "weakest_link"] = np.nan
    across = pd.DataFrame({
        "match_id": np.concatenate([left[~inside], right[~inside]]),
        "other": np.concatenate([right[~inside], left[~inside]]),
        "p": np.tile(probability[~inside], 2),
    }).sort_values(["match_id", "p"], ascending=[True, False]).drop_duplicates("match_id").set_index("match_id")
    entities["near_miss"] = across["p"].reindex(entities.index)
    entities["near_match_id"] = across["other"].reindex(entities.index)
    entities["large"] = entities["size"] >= state.large
    entities["weak"] = (entities["weakest_link"] < WEAK_LINK).fillna(False)
    entities["near"] = (entities["near_miss"] >= NEAR_MISS).fillna(False)
    source = state.source_column
    entities["same_source"], entities["sources"], oddness = None, None, 0.0
    if source is not None and state.records[source].nunique() > 1:
        per_source = state.records.groupby([current, state.records[source]]).size().rename("n").reset_index(level=1)
        doubled = per_source[per_source["n"] > 1]
        # how unusual a doubled source is: one minus the share of the entities holding that source that hold it twice
        usual = doubled.groupby(source).size() / per_source.groupby(source).size()
        odd = doubled.assign(odd=1.0 - doubled[source].map(usual).fillna(0.0))
        entities["same_source"] = doubled.groupby(level=0)[source].agg(lambda s: ", ".join(sorted(s))).reindex(entities.index)
        oddness = odd.groupby(level=0)["odd"].max().reindex(entities.index).fillna(0.0)
        entities["sources"] = state.records[source].groupby(current).agg(lambda s: ", ".join(sorted(set(s)))).reindex(entities.index)
    held = (1.0 - entities["weakest_link"]).fillna(0.0)
    entities["uncertainty"] = (
        np.maximum(held, entities["near_miss"].fillna(0.0))
        + FLAG_WEIGHT * entities["large"] + FLAG_WEIGHT * oddness
    )
    worth = (entities["size"] > 1) | entities["near_miss"].notna()
    entities = entities[worth].rename_axis("match_id").reset_index()
    decided = state.decided
    members = state.members
    entities["reviewed"] = [all(decided.get(r) == m for r in members[m]) for m in entities["match_id"]]
    return entities.sort_values(["uncertainty", "match_id"], ascending=[False, True], kind="stable").reset_index(drop=True)
