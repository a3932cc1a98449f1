"""Connected components of the match graph, with deterministic cluster ids.

The edges above the threshold are collected to the driver (two id columns through
Arrow) and labelled with scipy's sparse connected components; this is linear in the
number of edges and avoids Splink's one-Spark-job-per-iteration clustering. A cluster's
``match_id`` is its smallest record id, so the same input always gives the same ids.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def cluster_edges(edges: pd.DataFrame) -> pd.DataFrame:
    """Label the components of an edge list (columns ``id_l``, ``id_r``).

    Returns one row per record that has at least one edge: ``record_id`` and
    ``match_id``, the smallest record id in its component.
    """
    if edges.empty:
        return pd.DataFrame({"record_id": edges["id_l"].iloc[:0], "match_id": edges["id_l"].iloc[:0]})
    codes, uniques = pd.factorize(pd.concat([edges["id_l"], edges["id_r"]], ignore_index=True), sort=True)
    n = len(uniques)
    half = len(edges)
    graph = coo_matrix((np.ones(half, dtype=np.int8), (codes[:half], codes[half:])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    # uniques are sorted, so the first code seen per label is the component's smallest id
    smallest = pd.Series(np.arange(n)).groupby(labels).transform("min").to_numpy()
    return pd.DataFrame({"record_id": uniques, "match_id": uniques[smallest]})


def clusters_from_pairs(pairs: DataFrame, threshold: float) -> pd.DataFrame:
    """Cluster the scored pairs (``record_id_l``, ``record_id_r``) whose ``match_probability`` reaches ``threshold``."""
    edges = pairs.where(pairs["match_probability"] >= threshold)
    edges = edges.select(F.col("record_id_l").alias("id_l"), F.col("record_id_r").alias("id_r")).toPandas()
    return cluster_edges(edges)
