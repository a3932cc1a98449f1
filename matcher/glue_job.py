"""Glue-compatible job plumbing: one call runs a ``matcher`` task as an AWS Glue 5 job.

A job script in ``jobs/`` is::

    import sys
    from matcher.glue_job import run_job

    run_job("train", sys.argv)

:func:`run_job` reads Glue-style arguments (``--JOB_NAME x --config c.yaml --output DIR``
plus the task's own CLI options, always as ``--key value``) with
``awsglue.utils.getResolvedOptions`` when ``awsglue`` is importable, else with an
equivalent local parser; takes the SparkSession Glue made (or builds a local one) and
adds Splink's jar; wraps the work in Glue's ``Job.init``/``Job.commit`` when Glue's JVM
classes are present; then runs the same :data:`matcher.cli.TASKS` entry as ``matcher TASK``.
So a new CLI task gets its job script for free.

Job-only options: ``--input PATH`` (or ``NAME=PATH,NAME=PATH`` for several inputs) replaces
the config's input paths; ``--checkpoint-dir DIR`` is where Splink's intermediate tables go
(a unique sub-folder, removed when the job ends). ``--config`` and ``--output`` may be
``s3://`` (any Hadoop) URIs: a remote run folder is opened as the CLI opens it
(:func:`matcher.runtime.run_folder.open_run_folder`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from contextlib import contextmanager
from typing import Iterator, Sequence

from pyspark.sql import SparkSession

from matcher.config.transform import TransformConfig, load_config
from matcher.runtime.errors import ConfigError
from matcher.runtime.logs import configure_logging
from matcher.runtime.session import get_session

log = logging.getLogger(__name__)

JOB_OPTIONS = ("input", "checkpoint-dir")
"""Options every job accepts on top of the task's CLI options."""

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off", ""}


def _key(name: str) -> str:
    """The key Glue's parser gives an option: ``checkpoint-dir`` -> ``checkpoint_dir``."""
    return name.replace("-", "_")


def _present(argv: Sequence[str], name: str) -> bool:
    return any(arg == f"--{name}" or arg.startswith(f"--{name}=") for arg in argv)


def local_resolved_options(argv: Sequence[str], options: Sequence[str]) -> dict[str, str]:
    """What ``getResolvedOptions(argv, options)`` returns for ``options``, without ``awsglue``:
    every option is required, unknown arguments are ignored, dashes in keys become underscores."""
    parser = argparse.ArgumentParser(prog=argv[0] if argv else "job", allow_abbrev=False)
    for name in options:
        parser.add_argument(f"--{name}", required=True)
    known, _ = parser.parse_known_args(list(argv[1:]))
    return vars(known)


def resolve_options(argv: Sequence[str], required: Sequence[str], optional: Sequence[str] = ()) -> dict[str, str | None]:
    """Glue's ``getResolvedOptions`` when ``awsglue`` is importable, else :func:`local_resolved_options`.

    ``required`` options must be present; ``optional`` ones are ``None`` when absent (Glue's
    parser has no optional options, so only those present are passed to it). Keys use
    underscores for dashes, as Glue returns them.
    """
    try:
        from awsglue.utils import getResolvedOptions
    except ImportError:
        getResolvedOptions = local_resolved_options
    asked = [*required, *(name for name in optional if _present(argv, name))]
    resolved = getResolvedOptions(list(argv), asked)
    return {_key(name): resolved.get(_key(name)) for name in [*required, *optional]}


def _glue_job_class(spark: SparkSession):
    """Glue's ``Job`` and ``GlueContext`` when this JVM is Glue's, else ``None``.

    ``awsglue`` may be importable without Glue (the ``awsglue-dev`` package), so the
    test is whether Glue's JVM classes exist.
    """
    try:
        from awsglue.context import GlueContext
        from awsglue.job import Job
        from py4j.java_gateway import JavaClass
    except ImportError:
        return None
    if not isinstance(spark.sparkContext._jvm.com.amazonaws.services.glue.GlueContext, JavaClass):
        return None
    return Job, GlueContext


@contextmanager
def job_session(options: dict[str, str | None]) -> Iterator[SparkSession]:
    """The job's SparkSession (Glue's when present) with Splink's jar; ``Job.init``/``commit`` on Glue."""
    spark = get_session()
    glue = _glue_job_class(spark)
    if glue is None:
        yield spark
        return
    Job, GlueContext = glue
    job = Job(GlueContext(spark.sparkContext))
    job.init(options["JOB_NAME"], {k: v for k, v in options.items() if v is not None})
    yield spark
    job.commit()


def override_inputs(config: TransformConfig, value: str | None) -> TransformConfig:
    """Replace input paths: ``PATH`` for a one-input config, ``NAME=PATH,NAME=PATH`` otherwise."""
    if not value:
        return config
    names = [spec.name for spec in config.inputs]
    if "=" not in value.split(",")[0]:
        if len(names) != 1:
            raise ConfigError(f"--input {value}: config has inputs {', '.join(names)}; give NAME=PATH for each to replace")
        paths = {names[0]: value}
    else:
        paths = dict(item.split("=", 1) for item in value.split(",") if item)
    unknown = sorted(set(paths) - set(names))
    if unknown:
        raise ConfigError(f"--input: no input named {', '.join(unknown)} in the config (inputs: {', '.join(names)})")
    inputs = [spec.model_copy(update={"path": paths.get(spec.name, spec.path)}) for spec in config.inputs]
    return config.model_copy(update={"inputs": inputs})


def _task_parser(task: str) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    from matcher.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if task not in subparsers.choices:
        raise ValueError(f"unknown task {task!r} (tasks: {', '.join(subparsers.choices)})")
    return parser, subparsers.choices[task]


def _task_options(sub: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in sub._actions if a.option_strings and a.dest != "help"]


def _cli_arguments(task: str, sub: argparse.ArgumentParser, options: dict[str, str | None]) -> list[str]:
    """The ``matcher TASK ...`` arguments equivalent to the job's resolved options.

    Flags (``--retrain``) arrive Glue-style with a value: ``--retrain true``.
    """
    argv = [task]
    for action in _task_options(sub):
        flag = action.option_strings[-1]
        value = options.get(_key(flag[2:]))
        if value is None:
            continue
        if action.nargs == 0:
            if value.lower() not in _TRUE | _FALSE:
                raise ConfigError(f"{flag} {value}: expected true or false")
            if value.lower() in _TRUE:
                argv.append(flag)
        else:
            argv += [flag, value]
    return argv


def run_job(task: str, argv: Sequence[str] | None = None):
    """Run the ``matcher`` CLI task ``task`` as a Glue-style job and return its result.

    Errors propagate (the job fails with a trace, as Glue expects); the result is logged
    and printed as one line.
    """
    from matcher.cli import TASKS, open_task_folder

    argv = list(sys.argv if argv is None else argv)
    configure_logging(logging.INFO)
    parser, sub = _task_parser(task)
    flags = [a.option_strings[-1][2:] for a in _task_options(sub)]
    required = ["JOB_NAME", *(a.option_strings[-1][2:] for a in _task_options(sub) if a.required)]
    optional = [f for f in flags if f not in required] + list(JOB_OPTIONS)
    options = resolve_options(argv, required, optional)
    args = parser.parse_args(_cli_arguments(task, sub, options))
    with job_session(options):
        if not TASKS[task].needs_config:  # a task that opens its own folders (watch)
            result = TASKS[task].run(None, None, args)
            print(f"{options['JOB_NAME']}: {task} done: {_describe(result, '')}")
            return result
        config = override_inputs(load_config(args.config), options["input"])
        with open_task_folder(config, args, scratch=options["checkpoint_dir"], name=options["JOB_NAME"]) as folder:
            result = folder.located(TASKS[task].run(config, folder, args))
    print(f"{options['JOB_NAME']}: {task} done: {_describe(result, folder.location)}")
    return result


def _describe(result: object, output: str) -> str:
    if isinstance(result, dict) and "rows_out" in result:
        return f"{result['rows_out']} rows, {result['n_clusters']} clusters -> {output}"
    if isinstance(result, str) and result.strip():
        described = "; ".join(line.strip() for line in result.strip().splitlines())
        return f"{described} -> {output}" if output else described
    return f"-> {output}"
