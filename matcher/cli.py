"""The ``matcher`` command line: train, match, evaluate, run.

Every task takes ``--config`` (the transform's YAML) and ``--output`` (the run
folder; defaults to the config's ``output``). On failure it prints one line naming
what is wrong and exits non-zero: 2 for bad configuration or input, 1 otherwise.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from typing import Callable, Sequence

from matcher.config import TransformConfig, load_config
from matcher.errors import ConfigError, InputDataError, MatcherError
from matcher.model import TrainedModel
from matcher.pipeline import RunFolder, evaluate_task, match_task, run_folder, run_task, train_task

log = logging.getLogger("matcher")

@dataclass(frozen=True)
class Task:
    """One ``matcher`` subcommand: its help, its extra options and what it runs.

    ``run`` receives the validated config, the run folder and the parsed arguments.
    Every task also takes ``--config`` and ``--output``.
    """

    help: str
    run: Callable[[TransformConfig, RunFolder, argparse.Namespace], object]
    arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None


def _retrain_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--retrain", action="store_true", help="train a new model even if OUTPUT/model fits the config")


TASKS: dict[str, Task] = {
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
        lambda config, folder, args: evaluate_task(config, folder),
    ),
    "run": Task(
        "train if OUTPUT/model is missing or was trained for another config, match, and evaluate when truth_column is set",
        lambda config, folder, args: run_task(config, folder, retrain=args.retrain),
        _retrain_option,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="matcher",
        description="Probabilistic record matching on Spark: the portable successor to AWS Glue FindMatches.",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="logging verbosity (default INFO; record values are only logged at DEBUG)")
    tasks = parser.add_subparsers(dest="task", required=True, metavar="TASK")
    for name, task in TASKS.items():
        sub = tasks.add_parser(name, help=task.help, description=task.help)
        sub.add_argument("--config", required=True, metavar="PATH", help="transform configuration (YAML), e.g. configs/demo.yaml")
        sub.add_argument("--output", metavar="DIR", help="run folder for the model and outputs (default: the config's 'output')")
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
    if "pairwise" in result:
        pw, cl = result["pairwise"], result["clusters"]
        lines.append(f"pairwise precision/recall/F1: {pw['precision']:.4f} / {pw['recall']:.4f} / {pw['f1']:.4f}")
        lines.append(f"cluster  precision/recall/F1: {cl['precision']:.4f} / {cl['recall']:.4f} / {cl['f1']:.4f}")
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


def _one_line(text: object) -> str:
    """A message on one line: a header or value with a line break in it must not split the error."""
    return " ".join(str(text).split())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("py4j", "splink"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(args.log_level)))
    try:
        config = load_config(args.config)
        folder = run_folder(config, args.output)
        result = TASKS[args.task].run(config, folder, args)
    except (ConfigError, InputDataError) as err:
        print(f"matcher: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except MatcherError as err:
        print(f"matcher: error: {_one_line(err)}", file=sys.stderr)
        return 1
    except Exception as err:  # noqa: BLE001 - the CLI's promise is one line, not a trace
        log.debug("unexpected failure", exc_info=True)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"matcher: error: {type(err).__name__}: {_one_line(reason)} (rerun with --log-level DEBUG for details)", file=sys.stderr)
        return 1
    if isinstance(result, dict):
        _print_summary(result)
    elif isinstance(result, TrainedModel):
        print(f"model: {folder.model}")
    elif result is not None:
        print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
