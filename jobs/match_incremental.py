"""Glue job: match new, updated and deleted records against a completed run, keeping match_ids stable.

    spark-submit jobs/match_incremental.py --JOB_NAME daily --config configs/demo.yaml \
        --existing runs/demo --new data/new.csv [--delete data/deleted.csv] --output runs/demo-2
"""

import sys

from matcher.config import load_config
from matcher.incremental import match_incremental_task
from matcher.pipeline import run_folder
from matcher.runtime import job_session, resolve_options

options = resolve_options(sys.argv, ["JOB_NAME", "config", "existing", "new"], ["delete", "output"])
config = load_config(options["config"])
existing = run_folder(config, options["existing"])
folder = run_folder(config, options["output"])
folder.root.mkdir(parents=True, exist_ok=True)
with job_session(options, checkpoint_dir=str(folder.checkpoints)) as spark:
    summary = match_incremental_task(config, existing, options["new"], folder, spark, delete_path=options["delete"])
counts = summary["incremental"]
print(f"match_incremental: {counts['new_rows']} new rows, {counts['deleted']} deleted, {summary['n_clusters']} clusters -> {folder.root}")
