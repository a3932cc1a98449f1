"""Glue job: `matcher forget` (erase records from a run folder and the graph: a GDPR/CCPA request).

    spark-submit jobs/forget.py --JOB_NAME forget --config s3://bucket/configs/c.yaml --run s3://bucket/runs/base \
        --key crm:C10003,shop:S-00283
"""

import sys

from matcher import run_job

run_job("forget", sys.argv)
