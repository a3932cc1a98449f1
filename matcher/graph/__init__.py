"""The identity graph: match clusters as Customer, SourceRecord and identifier vertices (docs/graph.md)."""

import logging

# gremlinpython logs every connection at INFO
logging.getLogger("gremlinpython").setLevel(logging.WARNING)
