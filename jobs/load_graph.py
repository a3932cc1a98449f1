"""Glue job: write the identity graph of a finished run (matches, pairs, customers) to Neptune.

    spark-submit jobs/load_graph.py --JOB_NAME graph --config configs/demo.yaml [--output runs/demo]

The config's ``graph:`` section names the endpoint (``wss://...neptune.amazonaws.com:8182/gremlin``,
``iam_region`` for IAM auth); on Glue add gremlinpython and botocore with --additional-python-modules.
"""

import sys

from matcher.config import load_config
from matcher.graph.writer import describe, load_graph_task
from matcher.pipeline import run_folder
from matcher.runtime import job_session, resolve_options

options = resolve_options(sys.argv, ["JOB_NAME", "config"], ["output"])
config = load_config(options["config"])
folder = run_folder(config, options["output"])
folder.root.mkdir(parents=True, exist_ok=True)
with job_session(options, checkpoint_dir=str(folder.checkpoints)) as spark:
    result = load_graph_task(config, folder, spark)
print(f"load_graph: {describe(result)}")
