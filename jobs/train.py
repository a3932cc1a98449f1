"""Glue job: `matcher train` (estimate the model, save it to OUTPUT/model).

    spark-submit jobs/train.py --JOB_NAME train --config configs/fake_1000.yaml --output runs/fake_1000
"""

import sys

from matcher import run_job

run_job("train", sys.argv)
