"""The run an incremental run builds on: its model, summary, threshold, matches and pairs, checked and opened."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from matcher.config.transform import ClusteringSpec, TransformConfig
from matcher.matching.threshold import Threshold, clustering_spec, resolve_threshold
from matcher.model.artifact import TrainedModel
from matcher.runtime.errors import ConfigError, InputDataError
from matcher.runtime.run_folder import RunFolder

OUTPUT_COLUMNS = ("match_id", "match_confidence_score")
PAIR_SCORE_COLUMNS = ["record_id_l", "record_id_r", "match_weight", "match_probability"]


@dataclass
class ExistingRun:
    """What an incremental run needs to know about the run it builds on."""

    folder: RunFolder
    model: TrainedModel
    summary: dict[str, Any]
    threshold: Threshold  # the run's, which the incremental run keeps
    matches: ds.Dataset
    pairs: ds.Dataset
    key_type: pa.DataType

    @property
    def input_columns(self) -> list[str]:
        """The matches' columns that came from the input (all but the output columns)."""
        return [c for c in self.matches.schema.names if c not in OUTPUT_COLUMNS]

    def clustering(self, config: TransformConfig) -> ClusteringSpec:
        """How the run clustered: the config's method (or its default for this model), with the
        average-link weights the run recorded (it may have learned ``min_mean_weight`` from labels)."""
        spec = clustering_spec(config, self.model)
        recorded = self.summary.get("clustering") or {}
        if spec.method == "average_link" and recorded.get("method") == "average_link":
            spec = spec.model_copy(update={k: recorded[k] for k in ("min_mean_weight", "unscored_pair_weight") if k in recorded})
        return spec

    def records(self, key: str, columns: list[str]) -> pd.DataFrame:
        """Every existing record's ``key``, output columns and ``columns``, in the driver."""
        return self.matches.to_table(columns=list(dict.fromkeys([key, *OUTPUT_COLUMNS, *columns]))).to_pandas()


def _dataset(path: Path, what: str, root: Path) -> ds.Dataset:
    if not path.is_dir():
        raise InputDataError(f"{root}: existing run has no {what}/ folder; run 'matcher match' (or 'run') there first")
    try:
        return ds.dataset(str(path), format="parquet")
    except (pa.ArrowInvalid, OSError) as err:
        raise InputDataError(f"{path}: cannot read the existing {what} as Parquet ({str(err).splitlines()[0]})") from None


def open_existing_run(config: TransformConfig, folder: RunFolder) -> ExistingRun:
    """Check that ``folder`` holds a completed match run for ``config`` and open its tables.

    The run's recorded threshold must be the one ``config`` resolves to with the run's
    model (from labels, when the model learned one and the config asks for it)."""
    if not folder.root.is_dir():
        raise InputDataError(f"{folder.root}: existing run folder does not exist")
    model = TrainedModel.load(folder.model, config)
    if not folder.summary.exists():
        raise InputDataError(f"{folder.root}: existing run is not complete (summary.json missing); run 'matcher match' there first")
    summary = json.loads(folder.summary.read_text(encoding="utf-8"))
    recorded, threshold = Threshold.from_summary(summary), resolve_threshold(config, model)
    if recorded is None or not recorded.same_as(threshold):
        raise ConfigError(
            f"{folder.summary}: existing run used threshold {recorded or 'unknown'}, the config and model give "
            f"{threshold}; re-run 'matcher match' with this config first"
        )
    matches = _dataset(folder.matches, "matches", folder.root)
    pairs = _dataset(folder.pairs, "pairs", folder.root)
    wanted = {config.primary_key, *OUTPUT_COLUMNS}
    missing = sorted(wanted - set(matches.schema.names))
    if missing:
        raise InputDataError(f"{folder.matches}: column(s) {', '.join(missing)} missing from the existing matches")
    missing = sorted(set(PAIR_SCORE_COLUMNS) - set(pairs.schema.names))
    if missing:
        raise InputDataError(f"{folder.pairs}: column(s) {', '.join(missing)} missing from the existing pairs")
    return ExistingRun(folder, model, summary, threshold, matches, pairs, matches.schema.field(config.primary_key).type)
