"""Glue job: `matcher watch` (apply each delta file in an inbox exactly once, as a new generation of the run).

    spark-submit jobs/watch.py --JOB_NAME watch --config s3://bucket/configs/c.yaml --run s3://bucket/runs/base \
        --inbox s3://bucket/inbox --output s3://bucket/runs/base-increments --once true
"""

import sys

from matcher import run_job

run_job("watch", sys.argv)
