"""Glue job: `matcher match` (score and cluster with OUTPUT/model; write matches, pairs, summary.json).

    spark-submit jobs/find_matches.py --JOB_NAME find_matches --config configs/fake_1000.yaml --output runs/fake_1000
"""

import sys

from matcher import run_job

run_job("match", sys.argv)
