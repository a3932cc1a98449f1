"""The ``matcher`` command line: train, match, evaluate, run.

Every task takes ``--config`` (the transform's YAML) and ``--output`` (the run
folder; defaults to the config's ``output``). On failure it prints one line naming
what is wrong and exits non-zero: 2 for bad configuration or input, 1 otherwise.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Sequence

from matcher.config import load_config
from matcher.errors import ConfigError, InputDataError, MatcherError
from matcher.pipeline import evaluate_task, match_task, run_folder, run_task, train_task

log = logging.getLogger("matcher")

_TASKS: dict[str, tuple[str, Callable]] = {
    "train": ("estimate the model (lambda, u by sampling, m by EM) and save it to OUTPUT/model", train_task),
    "match": ("score and cluster the inputs with OUTPUT/model; write OUTPUT/matches, OUTPUT/pairs, OUTPUT/summary.json", match_task),
    "evaluate": ("compare OUTPUT/matches and OUTPUT/pairs with the config's truth_column; write OUTPUT/metrics.json", evaluate_task),
    "run": ("train if OUTPUT/model is missing or was trained for another config, match, and evaluate when truth_column is set", run_task),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="matcher",
        description="Probabilistic record matching on Spark: the portable successor to AWS Glue FindMatches.",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="logging verbosity (default INFO; record values are only logged at DEBUG)")
    tasks = parser.add_subparsers(dest="task", required=True, metavar="TASK")
    for name, (help_text, _) in _TASKS.items():
        sub = tasks.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--config", required=True, metavar="PATH", help="transform configuration (YAML), e.g. configs/demo.yaml")
        sub.add_argument("--output", metavar="DIR", help="run folder for the model and outputs (default: the config's 'output')")
        if name == "run":
            sub.add_argument("--retrain", action="store_true", help="train a new model even if OUTPUT/model fits the config")
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
    lines += [f"{name}: {path}" for name, path in result["outputs"].items()]
    print("\n".join(lines))


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
        task = _TASKS[args.task][1]
        result = task(config, folder, retrain=args.retrain) if args.task == "run" else task(config, folder)
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
    else:
        print(f"model: {folder.model}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
