"""The identity graph: match clusters as Customer, SourceRecord and identifier vertices (docs/graph.md).

Loading a run is :func:`matcher.load_graph_task`; this package's public names connect to a
Gremlin endpoint (the local server or Neptune) and ask it the usual questions::

    from gremlin_python.process.anonymous_traversal import traversal
    from matcher.graph import connect, records_of_customer

    g = traversal().with_remote(connect(config.graph))
    records_of_customer(g, "17")
"""

import logging

from matcher.config.transform import GraphSpec
from matcher.graph.connection import connect, probe
from matcher.graph.gremlin import graph_totals
from matcher.graph.queries import (
    cluster_history,
    customers_sharing_identifiers,
    customers_sharing_with,
    records_of_customer,
    snapshot,
)

__all__ = [
    "GraphSpec",
    "cluster_history",
    "connect",
    "customers_sharing_identifiers",
    "customers_sharing_with",
    "graph_totals",
    "probe",
    "records_of_customer",
    "snapshot",
]

# gremlinpython logs every connection at INFO
logging.getLogger("gremlinpython").setLevel(logging.WARNING)
