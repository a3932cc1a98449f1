"""Glue job: train if needed, find matches, evaluate when a truth column is configured.

    spark-submit jobs/find_matches.py --JOB_NAME demo --config configs/demo.yaml [--output runs/demo]
"""

import sys

from matcher.config import load_config
from matcher.pipeline import run_folder, run_task
from matcher.runtime import job_session, resolve_options

options = resolve_options(sys.argv, ["JOB_NAME", "config"], ["output"])
config = load_config(options["config"])
folder = run_folder(config, options["output"])
folder.root.mkdir(parents=True, exist_ok=True)
with job_session(options, checkpoint_dir=str(folder.checkpoints)) as spark:
    metrics = run_task(config, folder, spark)
print(f"find_matches: {metrics['rows_out']} rows, {metrics['n_clusters']} clusters -> {folder.root}")
