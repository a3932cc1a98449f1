"""Glue job: `matcher import-labels` (validate a labeled FindMatches CSV and store its labels with the transform).

    spark-submit jobs/import_labels.py --JOB_NAME labels --config configs/fake_1000.yaml \
        --labels labeling/sets.csv --output runs/fake_1000 [--replace true]
"""

import sys

from matcher import run_job

run_job("import-labels", sys.argv)
