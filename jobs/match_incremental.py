"""Glue job: `matcher match-incremental` (match new, updated and deleted records against a completed run, keeping match_ids stable).

    spark-submit jobs/match_incremental.py --JOB_NAME daily --config configs/fake_1000.yaml \
        --existing runs/fake_1000 --new data/new.csv [--delete data/deleted.csv] --output runs/fake_1000-2
"""

import sys

from matcher import run_job

run_job("match-incremental", sys.argv)
