"""Glue job: `matcher label-set` (write a FindMatches labeling file around the model's most uncertain pairs).

    spark-submit jobs/label_set.py --JOB_NAME labels --config configs/fake_1000.yaml \
        --run runs/fake_1000 --output labeling/sets.csv [--sets 10 --set-size 10]
"""

import sys

from matcher import run_job

run_job("label-set", sys.argv)
