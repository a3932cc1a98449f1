"""Glue job: `matcher run` (train when needed, match, evaluate).

    spark-submit jobs/run.py --JOB_NAME run --config configs/fake_1000.yaml --output runs/fake_1000 [--retrain true]
"""

import sys

from matcher import run_job

run_job("run", sys.argv)
