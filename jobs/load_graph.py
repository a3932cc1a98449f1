"""Glue job: `matcher load-graph` (write a finished run's identity graph to the config's Gremlin endpoint, e.g. Neptune; on Glue add gremlinpython and botocore with --additional-python-modules).

    spark-submit jobs/load_graph.py --JOB_NAME graph --config configs/demo.yaml --output runs/demo [--changes-only true]
"""

import sys

from matcher import run_job

run_job("load-graph", sys.argv)
