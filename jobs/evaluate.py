"""Glue job: `matcher evaluate` (metrics.json and report.html from OUTPUT/matches and OUTPUT/pairs).

    spark-submit jobs/evaluate.py --JOB_NAME evaluate --config configs/fake_1000.yaml --output runs/fake_1000
"""

import sys

from matcher import run_job

run_job("evaluate", sys.argv)
