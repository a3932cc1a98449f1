"""matcher: the portable, open successor to AWS Glue FindMatches, on Spark and Splink.

A transform is one YAML config. Its lifecycle is train → match → evaluate, each task
reading and writing one run folder (model, matches, pairs, summary.json, metrics.json,
report.html); ``run_task`` does all three, ``match_incremental_task`` adds new records
to a finished run, the labeling tasks teach the model, ``load_graph_task`` writes the
identity graph. Every task takes the config and a run folder first and, when it uses Spark,
an optional SparkSession (one is made when none is given)::

    from matcher import get_session, load_config, run_folder, run_task

    config = load_config("configs/fake_1000.yaml")
    folder = run_folder(config, "runs/fake_1000")
    metrics = run_task(config, folder, get_session())
    print(metrics["n_clusters"], folder.report)

The stages one by one, on DataFrames (what the tasks call)::

    from matcher import evaluate, find_matches, read_inputs, train

    df = read_inputs(spark, config)              # or harmonize_sources(spark, config).rows
    model = train(df, config)                    # a TrainedModel; model.save(folder.model)
    result = find_matches(df, config, model)     # a MatchResult: .rows (match_id), .pairs
    evaluate(result.rows, result.pairs, truth=config.truth_column,
             threshold=result.threshold.match_probability, link_type=config.resolved_link_type)
    result.release()

Tasks end in ``_task`` and mirror the CLI's subcommands; the bare verbs (``train``,
``evaluate``) are the DataFrame-in stage functions. The identity graph's connection and
queries are in :mod:`matcher.graph`. Names load on first use, so ``import matcher`` does
not start Spark or import Splink.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it. The stage function ``harmonize`` is public as
# ``harmonize_sources``: importing the subpackage ``matcher.harmonize`` binds that name to the module.
_SOURCES: dict[str, str] = {
    # runtime
    "get_session": "matcher.runtime.session",
    "RunFolder": "matcher.runtime.run_folder",
    "run_folder": "matcher.runtime.run_folder",
    "open_run_folder": "matcher.runtime.run_folder",
    "configure_logging": "matcher.runtime.logs",
    "MatcherError": "matcher.runtime.errors",
    "ConfigError": "matcher.runtime.errors",
    "InputDataError": "matcher.runtime.errors",
    "ModelError": "matcher.runtime.errors",
    "GraphError": "matcher.runtime.errors",
    # config
    "load_config": "matcher.config.transform",
    "config_from_dict": "matcher.config.transform",
    "TransformConfig": "matcher.config.transform",
    # model
    "TrainedModel": "matcher.model.artifact",
    "make_linker": "matcher.model.artifact",
    "splink_settings": "matcher.model.comparisons",
    "comparable": "matcher.model.comparisons",
    # harmonize
    "read_inputs": "matcher.harmonize.ingest",
    "harmonize_sources": "matcher.harmonize.harmonization",
    "Harmonized": "matcher.harmonize.harmonization",
    "golden_records": "matcher.harmonize.golden",
    # blocking, training, matching, evaluation
    "Candidates": "matcher.blocking.candidates",
    "choose_blocking_rules": "matcher.blocking.auto",
    "automatic_setup": "matcher.training.setup",
    "train": "matcher.training.trainer",
    "find_matches": "matcher.matching.matches",
    "with_compared_values": "matcher.matching.matches",
    "MatchResult": "matcher.matching.matches",
    "Threshold": "matcher.matching.threshold",
    "resolve_threshold": "matcher.matching.threshold",
    "evaluate": "matcher.evaluation.metrics",
    # tasks
    "train_task": "matcher.pipeline",
    "match_task": "matcher.pipeline",
    "evaluate_task": "matcher.evaluation.task",
    "run_task": "matcher.pipeline",
    "match_incremental_task": "matcher.incremental.task",
    "label_set_task": "matcher.labels.tasks",
    "import_labels_task": "matcher.labels.tasks",
    "export_labels_task": "matcher.labels.tasks",
    "evaluate_labels_task": "matcher.labels.tasks",
    "load_graph": "matcher.graph.writer",
    "load_graph_task": "matcher.graph.writer",
    # real-time matching (matcher serve)
    "MatchService": "matcher.serving.service",
    "serve_task": "matcher.serving",
    # data-steward review (matcher review) and the decision log every run enforces
    "ReviewState": "matcher.review.state",
    "create_review_app": "matcher.review",
    "review_task": "matcher.review",
    "DecisionLog": "matcher.matching.decisions",
    # starting configs (matcher init)
    "starting_config": "matcher.profiling.starting_config",
    "write_starting_config": "matcher.profiling.starting_config",
    # entry points
    "run_job": "matcher.glue_job",
}

_ORIGINAL = {"harmonize_sources": "harmonize"}  # public name -> the name in its module, where they differ

__all__ = sorted(_SOURCES)

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports on first use
    from matcher.blocking.auto import choose_blocking_rules
    from matcher.blocking.candidates import Candidates
    from matcher.config.transform import TransformConfig, config_from_dict, load_config
    from matcher.evaluation.metrics import evaluate
    from matcher.evaluation.task import evaluate_task
    from matcher.glue_job import run_job
    from matcher.graph.writer import load_graph, load_graph_task
    from matcher.harmonize.golden import golden_records
    from matcher.harmonize.harmonization import Harmonized
    from matcher.harmonize.harmonization import harmonize as harmonize_sources
    from matcher.harmonize.ingest import read_inputs
    from matcher.incremental.task import match_incremental_task
    from matcher.labels.tasks import evaluate_labels_task, export_labels_task, import_labels_task, label_set_task
    from matcher.matching.matches import MatchResult, find_matches, with_compared_values
    from matcher.matching.threshold import Threshold, resolve_threshold
    from matcher.model.artifact import TrainedModel, make_linker
    from matcher.model.comparisons import comparable, splink_settings
    from matcher.pipeline import match_task, run_task, train_task
    from matcher.profiling.starting_config import starting_config, write_starting_config
    from matcher.runtime.errors import ConfigError, GraphError, InputDataError, MatcherError, ModelError
    from matcher.runtime.logs import configure_logging
    from matcher.runtime.run_folder import RunFolder, open_run_folder, run_folder
    from matcher.runtime.session import get_session
    from matcher.matching.decisions import DecisionLog
    from matcher.review import create_review_app, review_task
    from matcher.review.state import ReviewState
    from matcher.serving import serve_task
    from matcher.serving.service import MatchService
    from matcher.training.setup import automatic_setup


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562) and cache the name here."""
    try:
        module = _SOURCES[name]
    except KeyError:
        raise AttributeError(f"module 'matcher' has no attribute {name!r}") from None
    value = getattr(import_module(module), _ORIGINAL.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
