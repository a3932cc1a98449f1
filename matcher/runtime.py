"""Glue-compatible job plumbing: argument parsing and the session, with or without ``awsglue``.

On AWS Glue the arguments come from ``awsglue.utils.getResolvedOptions`` and the
SparkContext from Glue; locally (spark-submit, python) an equivalent parser reads the
same ``--KEY value`` arguments and :func:`matcher.session.get_session` builds the session.
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from typing import Iterator, Sequence

from pyspark.sql import SparkSession

from matcher.session import get_session


def resolve_options(argv: Sequence[str], required: list[str], optional: Sequence[str] = ()) -> dict[str, str]:
    """Glue's ``getResolvedOptions`` when available, else a parser with the same contract.

    ``required`` options must be present; ``optional`` ones default to ``None``.
    """
    try:
        from awsglue.utils import getResolvedOptions
    except ImportError:
        getResolvedOptions = None
    present = [name for name in optional if f"--{name}" in argv]
    if getResolvedOptions is not None:
        resolved = getResolvedOptions(list(argv), [*required, *present])
    else:
        parser = argparse.ArgumentParser(allow_abbrev=False)
        for name in required:
            parser.add_argument(f"--{name}", required=True)
        for name in optional:
            parser.add_argument(f"--{name}")
        known, _ = parser.parse_known_args(list(argv[1:]))
        resolved = vars(known)
    return {name: resolved.get(name) for name in [*required, *optional]}


@contextmanager
def job_session(options: dict[str, str], *, checkpoint_dir: str | None = None) -> Iterator[SparkSession]:
    """The job's SparkSession; on Glue, wrapped in ``Job.init``/``Job.commit``."""
    try:
        from awsglue.context import GlueContext
        from awsglue.job import Job
        from pyspark.context import SparkContext
    except ImportError:
        yield get_session(checkpoint_dir=checkpoint_dir)
        return
    glue_context = GlueContext(SparkContext.getOrCreate())
    job = Job(glue_context)
    job.init(options["JOB_NAME"], options)
    yield get_session(checkpoint_dir=checkpoint_dir)
    job.commit()
