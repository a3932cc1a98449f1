"""The ``matcher`` command line: init, train, match, evaluate, run.

Every task takes ``--config`` (the transform's YAML) and ``--output`` (the run
folder; defaults to the config's ``output``). On failure it prints one line naming
what is wrong and exits non-zero: 2 for bad configuration or input, 1 otherwise.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Callable, Sequence

from matcher.config.transform import TransformConfig, load_config
from matcher.graph.server import graph_server_command
from matcher.graph.writer import describe, load_graph_task
from matcher.model.artifact import TrainedModel
from matcher.pipeline import evaluate_task, match_task, run_task, train_task
from matcher.runtime.errors import ConfigError, InputDataError, MatcherError
from matcher.runtime.logs import configure_logging
from matcher.runtime.progress import set_mode
from matcher.runtime.remote_folder import readable_locally, relocate, writable_locally
from matcher.runtime.run_folder import RunFolder, open_run_folder
from matcher.runtime.s3_server import s3_server_command

log = logging.getLogger("matcher")

@dataclass(frozen=True)
class Task:
    """One ``matcher`` subcommand: its help, its extra options and what it runs.

    ``run`` receives the validated config, the run folder and the parsed arguments.
    Every task also takes ``--config`` and ``--output``, unless ``needs_config`` is False
    (then ``run`` gets ``None`` for both). ``whole_folder``: the task reads and writes its run
    folder's tables in the driver, so a remote one is staged whole (:func:`open_task_folder`).
    """

    help: str
    run: Callable[[TransformConfig, RunFolder, argparse.Namespace], object]
    arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None
    needs_config: bool = True
    output_help: str | None = None  # set when --output names a file, not the run folder (the task then takes --run)
    whole_folder: bool = False
    output_aliases: tuple[str, ...] = ()  # other names of --output


def _incremental_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--existing", required=True, metavar="DIR", help="the completed run folder to build on (model/, matches/, pairs/, summary.json)")
    parser.add_argument(
        "--new", required=True, action="append", metavar="PATH",
        help="new records, and new versions of existing primary keys (CSV, Parquet or JSON); for a config with "
             "sources: SOURCE=PATH, repeated or comma-separated, one per source with new rows")
    parser.add_argument("--delete", metavar="PATH", help="primary keys to delete (CSV with a header, or Parquet, with the primary key column)")


def _match_incremental(config: TransformConfig, folder: RunFolder, args: argparse.Namespace) -> dict:
    from matcher.incremental.task import match_incremental_from, new_source_paths

    if config.sources is not None:
        new = new_source_paths(config, args.new)
    elif len(args.new) == 1:
        new = args.new[0]
    else:
        raise ConfigError(f"--new given {len(args.new)} times; a config without sources takes one file")
    return match_incremental_from(config, args.existing, new, folder, delete_path=args.delete)


def _forget_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key", required=True, action="append", metavar="KEY",
                        help="a record to erase: SOURCE:PK for a config with sources, the primary key otherwise "
                             "(repeated or comma-separated)")
    parser.add_argument("--no-graph", action="store_true", help="leave the graph alone (default: update it when the config has 'graph:')")


def _forget(config: TransformConfig, folder: RunFolder, args: argparse.Namespace) -> str:
    from matcher.incremental.forget import describe_forget, forget_task

    keys = [part.strip() for value in args.key for part in value.split(",") if part.strip()]
    return describe_forget(forget_task(config, folder, keys, graph=not args.no_graph))


def _retrain_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--retrain", action="store_true", help="train a new model even if OUTPUT/model fits the config")


def _run_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", metavar="DIR", help="run folder with the model and labels (default: the config's 'output')")


def _label_set_options(parser: argparse.ArgumentParser) -> None:
    _run_option(parser)
    parser.add_argument("--sets", type=int, default=10, help="labeling sets to write (default 10)")
    parser.add_argument("--set-size", type=int, default=10, help="records per set (default 10; FindMatches advises 10-20)")


def _import_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labels", required=True, metavar="FILE",
                        help="labeled FindMatches CSV (labeling_set_id, label, source columns), or a data stewards' decision "
                             "log (*.jsonl, or a run folder holding decisions.jsonl): its decided pairs")
    parser.add_argument("--replace", action="store_true", help="discard the labels imported before (default: append)")


def _label_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, metavar="CSV", help="labeling file to label; progress is saved into it")


def _evaluate_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labels", action="store_true",
                        help="score the held-out imported labels with OUTPUT/model; write OUTPUT/label_metrics.json")


def _evaluate(config: TransformConfig, folder: RunFolder, args: argparse.Namespace) -> object:
    if not args.labels:
        return evaluate_task(config, folder)
    from matcher.labels.tasks import evaluate_labels_task, format_label_metrics

    return format_label_metrics(evaluate_labels_task(config, folder)) + f"\nmetrics: {folder.where('label_metrics.json')}"


def _label_set(config: TransformConfig, folder: RunFolder, args: argparse.Namespace) -> str:
    from matcher.labels.tasks import label_set_task

    with writable_locally(args.output) as output:
        return relocate(label_set_task(config, folder, output, sets=args.sets, set_size=args.set_size), str(output), args.output)


def _import_labels(config: TransformConfig, folder: RunFolder, args: argparse.Namespace) -> str:
    from matcher.labels.tasks import import_labels_task

    with readable_locally(args.labels) as labels:
        return relocate(import_labels_task(config, folder, labels, replace=args.replace), str(labels), args.labels)


def _export_labels(config: TransformConfig, folder: RunFolder, args: argparse.Namespace) -> str:
    from matcher.labels.tasks import export_labels_task

    with writable_locally(args.output) as output:
        return relocate(export_labels_task(config, folder, output), str(output), args.output)


def _label(config: TransformConfig, folder: RunFolder, args: argparse.Namespace) -> str:
    from matcher.labels.labeler import label_file

    return label_file(config, args.input)


def _init_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, action="append", metavar="PATH",
                        help="a source file (.csv, .csv.gz, .parquet, .json, .jsonl); repeat for each source")
    parser.add_argument("--output", required=True, metavar="CONFIG", help="the config file to write (YAML), e.g. configs/mine.yaml")
    parser.add_argument("--truth-column", metavar="NAME", help="a ground-truth column present in every source: passed through, never compared")
    parser.add_argument("--name", help="the transform's name (default: the config file's name)")
    parser.add_argument("--force", action="store_true", help="overwrite CONFIG if it exists")


def _serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")


def _watch(config: None, folder: None, args: argparse.Namespace) -> str:
    from matcher.incremental.watch import watch_task

    done = watch_task(load_config(args.config), args.run, args.inbox, args.output, once=args.once, poll_s=args.poll_s)
    return (f"inbox: {done['applied']} applied, {done['rejected']} rejected, {done['recovered']} applied before a stop "
            f"and moved now\nlatest run: {done['latest']}")


def _watch_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="PATH", help="transform configuration (YAML)")
    parser.add_argument("--run", required=True, metavar="DIR", help="the completed run the first delta builds on")
    parser.add_argument("--inbox", required=True, metavar="DIR",
                        help="folder or s3:// prefix where delta files arrive (INBOX/<source>/ for a config with sources)")
    parser.add_argument("--output", metavar="DIR", help="where the generations go: DIR/000001, ... (default: RUN-increments)")
    parser.add_argument("--once", action="store_true", help="apply what the inbox holds, then stop")
    parser.add_argument("--poll-s", type=float, default=10.0, help="seconds between looks at the inbox (default 10)")


def _serve(config: TransformConfig, folder: RunFolder, args: argparse.Namespace) -> str:
    if args.review:
        return _review(config, folder, args, matching=True)
    from matcher.serving import serve_task

    return serve_task(config, folder, host=args.host, port=args.port)


def _review_options(parser: argparse.ArgumentParser) -> None:
    _serve_options(parser)
    parser.add_argument("--token", help="require this token (default: $MATCHER_REVIEW_TOKEN; none: the page is open to this machine)")
    parser.add_argument("--require-token", action="store_true", help="require a token; a random one is made when none is given")
    parser.add_argument("--reviewer", help="the name decisions are recorded under by default (default: $MATCHER_REVIEWER or $USER)")


def _review(config: TransformConfig, folder: RunFolder, args: argparse.Namespace, *, matching: bool = False) -> str:
    from matcher.review import review_task

    return review_task(config, folder, host=args.host, port=args.port, token=args.token, require_token=args.require_token,
                       who=args.reviewer, matching=matching)


def _init(config: None, folder: None, args: argparse.Namespace) -> str:
    from matcher.profiling.starting_config import write_starting_config

    return write_starting_config(args.source, args.output, truth_column=args.truth_column, name=args.name, force=args.force)


TASKS: dict[str, Task] = {
    "init": Task(
        "profile source files (first 200k rows each) and write a starting config that 'matcher run' runs as is: "
        "sources mapped onto the canonical schema, comparison columns and their kinds, no blocking rules needed; "
        "prints what it decided and why (counts and value shapes, never values)",
        _init,
        _init_options,
        needs_config=False,
    ),
    "train": Task(
        "estimate the model (lambda, u by sampling, m by EM) and save it to OUTPUT/model",
        lambda config, folder, args: train_task(config, folder),
    ),
    "match": Task(
        "score and cluster the inputs with OUTPUT/model; write OUTPUT/matches, OUTPUT/pairs, OUTPUT/summary.json",
        lambda config, folder, args: match_task(config, folder),
    ),
    "evaluate": Task(
        "compare OUTPUT/matches and OUTPUT/pairs with the config's truth_column; write OUTPUT/metrics.json",
        _evaluate,
        _evaluate_options,
    ),
    "run": Task(
        "train if OUTPUT/model is missing or was trained for another config, match, and evaluate when truth_column is set",
        lambda config, folder, args: run_task(config, folder, retrain=args.retrain),
        _retrain_option,
    ),
    "match-incremental": Task(
        "match new, updated and deleted records against the run in --existing with its model; write the updated run "
        "(matches, pairs, summary.json) and its change log (changes.json, changes/) to OUTPUT; match_ids stay stable",
        _match_incremental,
        _incremental_options,
        whole_folder=True,
    ),
    "forget": Task(
        "erase records (a GDPR/CCPA request) from the completed run in OUTPUT (alias --run): matches, pairs, quarantine, "
        "labels and customers, the touched clusters rebuilt, and from the graph; recorded without values in "
        "OUTPUT/erasures.jsonl",
        _forget,
        _forget_options,
        whole_folder=True,
        output_aliases=("--run",),
    ),
    "load-graph": Task(
        "write the identity graph of the run in OUTPUT (matches, pairs, customers) to the config's graph endpoint",
        lambda config, folder, args: describe(load_graph_task(config, folder, changes_only=args.changes_only)),
        lambda parser: parser.add_argument(
            "--changes-only", action="store_true",
            help="OUTPUT holds a match-incremental run: write only the clusters its change log touches, drop its deleted records"),
    ),
    "graph-server": Task(
        "start, stop or check the local Gremlin Server (ws://127.0.0.1:8182/gremlin); fetch (or the first start) downloads its jars",
        lambda config, folder, args: graph_server_command(args.action, port=args.port),
        lambda parser: (parser.add_argument("action", choices=["fetch", "start", "stop", "status"]),
                        parser.add_argument("--port", type=int, default=8182)),
        needs_config=False,
    ),
    "watch": Task(
        "apply each delta file dropped into INBOX (folder or s3:// prefix) exactly once with match-incremental, "
        "building generations OUTPUT/000001, ... on RUN; applied files move to INBOX/processed/, refused ones to "
        "INBOX/rejected/ with a reason file",
        _watch,
        _watch_options,
        needs_config=False,
    ),
    "s3-server": Task(
        "start, stop or check a local S3-compatible endpoint (SeaweedFS, http://127.0.0.1:8333, bucket 'matcher'); "
        "fetch gets Spark's S3 connector (hadoop-aws) with Maven; env prints the variables that point the matcher at it",
        lambda config, folder, args: s3_server_command(args.action, port=args.port, buckets=tuple(args.bucket or ["matcher"])),
        lambda parser: (parser.add_argument("action", choices=["fetch", "start", "stop", "status", "env"]),
                        parser.add_argument("--port", type=int, default=8333),
                        parser.add_argument("--bucket", action="append", metavar="NAME",
                                            help="bucket to create at start (repeatable; default matcher)")),
        needs_config=False,
    ),
    "serve": Task(
        "match records over HTTP in milliseconds against the completed run in OUTPUT (alias --run): POST /match, "
        "/match/batch, /records (kept and appended to the run), GET /entities/{match_id}, /health, /metrics; docs at /docs",
        _serve,
        lambda parser: (_review_options(parser), parser.add_argument(
            "--review", action="store_true", help="also serve the data-steward review page at /review (see 'matcher review')")),
        output_aliases=("--run",),
    ),
    "review": Task(
        "the data-steward review page for the completed run in OUTPUT (alias --run) at http://127.0.0.1:8080/review: "
        "a queue of uncertain entities; confirm, split, merge, label pairs, undo; decisions go to OUTPUT/decisions.jsonl "
        "and every later run enforces them",
        _review,
        _review_options,
        output_aliases=("--run",),
    ),
    "label-set": Task(
        "write a FindMatches labeling file (CSV) around RUN/model's most uncertain pairs, or diverse blocked pairs without a model",
        _label_set,
        _label_set_options,
        output_help="labeling file to write (CSV)",
    ),
    "label": Task("label a labeling file interactively in the terminal (match / non-match / skip / undo / quit)", _label, _label_options),
    "import-labels": Task(
        "validate a labeled FindMatches CSV and add its labels to OUTPUT/labels (append; --replace discards earlier labels)",
        _import_labels,
        _import_options,
    ),
    "export-labels": Task(
        "write every label in RUN/labels back out as one FindMatches CSV",
        _export_labels,
        _run_option,
        output_help="labeling file to write (CSV)",
    ),
}


def open_task_folder(
    config: TransformConfig, args: argparse.Namespace, *, scratch: str | None = None, name: str = "matcher",
) -> AbstractContextManager[RunFolder]:
    """The run folder of the task ``args`` names, local or remote, as the CLI and the Glue jobs open it:
    ``--output``, or ``--run`` for a task whose ``--output`` is a file, else the config's ``output``."""
    task = TASKS[args.task]
    location = (args.run if task.output_help else args.output) or config.output
    return open_run_folder(location, scratch=scratch, name=name, whole=task.whole_folder)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="matcher",
        description="Probabilistic record matching on Spark: the portable successor to AWS Glue FindMatches.",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="logging verbosity (default INFO; record values are only logged at DEBUG)")
    parser.add_argument("--no-progress", action="store_true",
                        help="show no progress of the stages (default: bars on a terminal, log lines elsewhere; "
                             "also MATCHER_PROGRESS=off)")
    tasks = parser.add_subparsers(dest="task", required=True, metavar="TASK")
    for name, task in TASKS.items():
        sub = tasks.add_parser(name, help=task.help, description=task.help)
        if task.needs_config:
            sub.add_argument("--config", required=True, metavar="PATH", help="transform configuration (YAML), e.g. configs/demo.yaml")
            if task.output_help:
                sub.add_argument("--output", required=True, metavar="CSV", help=task.output_help)
            else:
                sub.add_argument("--output", *task.output_aliases, dest="output", metavar="DIR",
                                 help="run folder for the model and outputs (default: the config's 'output')")
        task.arguments(sub)
    return parser


def _print_summary(result: dict) -> None:
    if "rows_out" not in result:
        return
    lines = [
        f"rows: {result['rows_in']} in, {result['rows_out']} out",
        f"pairs scored: {result['n_pairs']}",
        f"clusters: {result['n_clusters']} (threshold match probability {result['threshold_match_probability']:.4f})",
    ]
    entities = (result.get("clustering") or {}).get("entities")
    if entities and entities["largest"]:
        lines.append(
            f"largest entity: {entities['largest'][0]['size']} records; {entities['flagged']} look larger than the data "
            "supports (summary.json: clustering.entities)"
        )
    recorded = result.get("threshold") or {}
    if recorded.get("expected_precision") is not None:
        lines.append(
            f"threshold {recorded['source']}: the model expects precision {recorded['expected_precision']:.4f}, "
            f"recall {recorded['expected_recall']:.4f}"
        )
    if "pairwise" in result:
        pw, cl = result["pairwise"], result["clusters"]
        lines.append(f"pairwise precision/recall/F1: {pw['precision']:.4f} / {pw['recall']:.4f} / {pw['f1']:.4f}")
        lines.append(f"cluster  precision/recall/F1: {cl['precision']:.4f} / {cl['recall']:.4f} / {cl['f1']:.4f}")
    if "incremental" in result:
        c = result["incremental"]
        lines.append(f"changes: {c['new']} new, {c['joined']} joined, {c['updated']} updated, {c['moved']} moved, "
                     f"{c['deleted']} deleted; {c['merges']} merges, {c['splits']} splits, {c['retired_ids']} ids retired")
    if "harmonization" in result:
        lines += _harmonization_lines(result["harmonization"])
    lines += [f"{name}: {path}" for name, path in result["outputs"].items()]
    print("\n".join(lines))


def _harmonization_lines(h: dict) -> list[str]:
    """Per source: rows in = matched + quarantined (by rule); then the golden customers."""
    lines = [f"harmonization: {h['rows_in']} rows from {len(h['sources'])} sources, "
             f"{h['rows_matched']} matched, {h['rows_quarantined']} quarantined"]
    for name, c in h["sources"].items():
        rules = ", ".join(f"{rule} {n}" for rule, n in sorted(c["quarantined_by_rule"].items()))
        lines.append(f"  {name}: {c['rows_in']} in = {c['rows_matched']} matched + {c['rows_quarantined']} quarantined"
                     + (f" ({rules})" if rules else ""))
    if "customers" in h:
        lines.append(f"golden customers: {h['customers']} ({h['customers_in_several_sources']} seen in several sources)")
    return lines


_RAISED = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt): ")


def failure_reason(err: BaseException) -> str:
    """An unexpected failure as ``Type: first line``. A failure inside a Spark Python worker
    (e.g. a pandas UDF) arrives as a ``PythonException`` whose text is the worker's traceback:
    its last ``SomeError: ...`` line is what went wrong."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if type(err).__name__ == "PythonException":
        raised = [line for line in lines if _RAISED.match(line)]
        if raised:
            return f"{type(err).__name__}: {_one_line(raised[-1])}"
    return f"{type(err).__name__}: {_one_line(lines[0])}" if lines else type(err).__name__


def _one_line(text: object) -> str:
    """A message on one line: a header or value with a line break in it must not split the error."""
    return " ".join(str(text).split())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_mode("off" if args.no_progress else None)
    configure_logging(args.log_level)
    try:
        task = TASKS[args.task]
        if task.needs_config:
            config = load_config(args.config)
            with open_task_folder(config, args) as folder:
                result = folder.located(task.run(config, folder, args))
        else:
            config = folder = None
            result = task.run(config, folder, args)
    except (ConfigError, InputDataError) as err:
        print(f"matcher: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except MatcherError as err:
        print(f"matcher: error: {_one_line(err)}", file=sys.stderr)
        return 1
    except Exception as err:  # noqa: BLE001 - the CLI's promise is one line, not a trace
        log.debug("unexpected failure", exc_info=True)
        print(f"matcher: error: {failure_reason(err)} (rerun with --log-level DEBUG for details)", file=sys.stderr)
        return 1
    if isinstance(result, dict):
        _print_summary(result)
    elif isinstance(result, TrainedModel):
        print(f"model: {folder.where('model')}")
    elif result is not None:
        print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
