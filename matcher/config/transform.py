"""The transform configuration: one validated object that flows through every stage.

A configuration is written in YAML (see ``configs/``) and validated with pydantic.
Validation errors are turned into :class:`~matcher.runtime.errors.ConfigError` messages
that name the offending key, e.g. ``configs/x.yaml: columns.2.kind: unknown
comparison kind 'nmae' (expected one of: name, date, ...)``.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from matcher.config.base import RECORD_ID, RESERVED_COLUMNS, StrictModel, TableSpec
from matcher.config.harmonization import (
    CANONICAL_FIELDS,
    DERIVED_FIELDS,
    HARMONIZED_INPUT,
    SOURCE_SYSTEM,
    GoldenSpec,
    QualitySpec,
    SourceSpec,
    StandardizeSpec,
)
from matcher.runtime.errors import ConfigError


class ComparisonKind(str, Enum):
    """How two values of a column are compared (see :mod:`matcher.model.comparisons`)."""

    name = "name"
    date = "date"
    birth_date = "birth_date"
    email = "email"
    phone = "phone"
    id_number = "id_number"
    postcode = "postcode"
    exact = "exact"
    numeric = "numeric"
    text = "text"
    initial = "initial"


DATE_KINDS = frozenset({ComparisonKind.date, ComparisonKind.birth_date})
"""Kinds whose values are dates (ISO ``yyyy-MM-dd`` strings, parsed once per record for comparison)."""


class InputSpec(TableSpec):
    """One input table."""


PostcodeFormat = Literal["auto", "uk", "us", "digits"]
POSTCODE_FORMATS = ("uk", "us", "digits")
"""The concrete postcode formats (``auto`` is decided from the data, see :mod:`matcher.model.postcode`)."""


class ColumnSpec(StrictModel):
    """A column to match on, with the kind of comparison it gets.

    ``format`` (kind ``postcode`` only) picks the postcode's comparison levels: ``uk``
    (sector / district / area prefixes), ``us`` (ZIP / ZIP+4), ``digits`` (numeric codes
    such as Australia's 4-digit postcodes), or ``auto`` (the default when left out):
    decided from a sample of the column's values when the model is trained, and recorded
    in the model so matching uses the same levels.

    ``swapped_with`` (kind ``name`` only) names another compared name column whose value a
    record may hold in this one and the reverse (a form filled in surname first): a level
    after exact says the two names are swapped between the records. ``matcher init`` sets it
    on the first and last name.
    """

    name: str
    kind: ComparisonKind
    term_frequency: bool = False
    format: PostcodeFormat | None = None
    swapped_with: str | None = None
    _written_format: str | None = PrivateAttr(default=None)
    """What the user wrote for ``format`` once :meth:`with_format` filled in a concrete one."""

    @model_validator(mode="after")
    def _term_frequency_needs_a_whole_value(self) -> "ColumnSpec":
        if self.term_frequency and self.kind is ComparisonKind.initial:
            raise ValueError(f"{self.name}: term_frequency is not available for kind 'initial' (it compares first letters)")
        if self.format is not None and self.kind is not ComparisonKind.postcode:
            raise ValueError(f"{self.name}: format is only for kind 'postcode' (this column is kind {self.kind.value!r})")
        if self.swapped_with is not None and (self.kind is not ComparisonKind.name or self.swapped_with == self.name):
            raise ValueError(f"{self.name}: swapped_with names another name column, and only a kind 'name' column has it")
        return self

    @property
    def postcode_format(self) -> str:
        """``auto``, ``uk``, ``us`` or ``digits`` for a postcode column (``auto`` when not given)."""
        return self.format or "auto"

    @property
    def needs_format(self) -> bool:
        """A postcode column whose format is still to be decided from the data."""
        return self.kind is ComparisonKind.postcode and self.postcode_format == "auto"

    def with_format(self, fmt: str) -> "ColumnSpec":
        """A copy with the concrete postcode format ``fmt``; its hash stays what the user wrote."""
        if fmt not in POSTCODE_FORMATS:
            raise ValueError(f"{self.name}: unknown postcode format {fmt!r} (expected one of: {', '.join(POSTCODE_FORMATS)})")
        copy = self.model_copy(update={"format": fmt})
        copy._written_format = self._written_format if self._written_format is not None else (self.format or "")
        return copy

    def as_written(self) -> dict[str, Any]:
        """The column as the user wrote it (a format filled in from the data is left out), for hashing."""
        data = self.model_dump(mode="json")
        written = self._written_format if self._written_format is not None else data["format"]
        if written:
            data["format"] = written
        else:
            data.pop("format")  # not given: configs from before ``format`` existed hash as they did
        if data["swapped_with"] is None:
            data.pop("swapped_with")  # likewise
        return data


BlockingRule = Union[list[str], str]
"""A list of columns that must agree (``[surname, dob]``) or raw Splink SQL (``l.x = r.x``)."""

AUTO = "auto"
"""A rule list left to the data: chosen at training (:mod:`matcher.training.setup`) and saved with the model."""


class BlockingRuleSpec(StrictModel):
    """A candidate-generation rule, used when ``accuracy_cost_tradeoff >= min_accuracy_cost_tradeoff``."""

    rule: BlockingRule
    min_accuracy_cost_tradeoff: float = Field(default=0.0, ge=0.0, le=1.0)


def _unique(names: list[str], what: str) -> list[str]:
    """``names`` unchanged, or a ValueError naming the repeated ones."""
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{what} must be unique, repeated: {', '.join(repeated)}")
    return names


def _check_sql_rule(rule: BlockingRule, index: int) -> None:
    """A raw SQL rule must parse as a Spark SQL condition."""
    if isinstance(rule, list):
        return
    import sqlglot

    try:
        sqlglot.parse_one(rule, read="spark")
    except sqlglot.errors.ParseError as err:
        reason = str(err).splitlines()[0]
        raise ValueError(f"rule {index} {rule!r} is not valid SQL ({reason})") from None


def _rules_or_auto(rules: list | str) -> list | str:
    """A non-empty list of parseable rules, or :data:`AUTO`."""
    if isinstance(rules, str):
        return rules
    if not rules:
        raise ValueError(f"give at least one rule, or leave the key out (or write {AUTO!r}) to have them chosen from the data")
    return rules


class TrainingSpec(StrictModel):
    """How the Fellegi-Sunter parameters are estimated.

    ``deterministic_rules`` and ``em_blocking_rules`` are chosen from the data when left
    out (or ``auto``); rules written here win. ``correct_dependence`` measures which
    comparisons agree together among non-matches (a household's surname, address and phone)
    and takes the doubly counted evidence off (:mod:`matcher.training.dependence`).
    """

    deterministic_rules: list[BlockingRule] | Literal["auto"] = AUTO
    deterministic_recall: float = Field(default=0.7, gt=0.0, le=1.0)
    em_blocking_rules: list[BlockingRule] | Literal["auto"] = AUTO
    u_max_pairs: float | None = Field(default=None, gt=0)
    max_iterations: int = Field(default=25, ge=1, le=1000)
    em_convergence: float = Field(default=1e-4, gt=0)
    correct_dependence: bool = True

    @field_validator("deterministic_rules", "em_blocking_rules")
    @classmethod
    def _sql_rules_parse(cls, rules: list | str) -> list | str:
        for i, rule in enumerate(_rules_or_auto(rules) if isinstance(rules, list) else []):
            _check_sql_rule(rule, i)
        return rules


class GraphSpec(StrictModel):
    """Where and how the identity graph is written (see ``docs/graph.md``).

    ``endpoint`` is a Gremlin WebSocket URL (``ws://127.0.0.1:8182/gremlin`` for the local
    server, ``wss://<cluster>.neptune.amazonaws.com:8182/gremlin`` for Neptune).
    """

    endpoint: str = Field(pattern=r"^wss?://")
    batch_size: int = Field(default=200, ge=1, le=10_000)
    writers: int | None = Field(default=None, ge=1, le=1024)
    tls: bool | None = None
    iam_region: str | None = None
    hash_identifiers: bool = False
    salt: str | None = None
    salt_env: str | None = None
    same_as: bool = True
    max_retries: int = Field(default=8, ge=0, le=100)

    @model_validator(mode="after")
    def _salt_when_hashing(self) -> "GraphSpec":
        if self.hash_identifiers and not (self.salt or self.salt_env):
            raise ValueError("hash_identifiers needs 'salt' or 'salt_env' (the name of an environment variable holding it)")
        return self

    @property
    def use_tls(self) -> bool:
        return self.tls if self.tls is not None else self.endpoint.startswith("wss://")


class LabelsSpec(StrictModel):
    """How imported labels (``matcher import-labels``) shape training and evaluation.

    See ``docs/labeling.md``: a labeling set is held out for ``matcher evaluate --labels``
    when a seeded hash of its id falls below ``holdout_share``; the other sets train.
    """

    holdout_share: float = Field(default=0.25, ge=0.0, lt=1.0)
    prior_pairs: float = Field(default=10.0, ge=0.0)
    threshold_from_labels: bool = False
    enforce_in_clustering: bool = False
    clustering_from_labels: bool = False


class ClusteringSpec(StrictModel):
    """How the above-threshold pairs become clusters (see :mod:`matcher.matching.clustering`).

    ``connected_components`` joins every pair at or above the threshold, so one wrong link
    chains two entities together. ``average_link`` merges clusters along those links,
    strongest first, only while the mean match weight over every pair of records between
    the two clusters reaches ``min_mean_weight``; a pair that blocking never scored counts
    as ``unscored_pair_weight``. Left out, ``method`` is ``average_link`` when the threshold is
    estimated (it sits where pairwise accuracy peaks, low enough for chains) and
    ``connected_components`` otherwise (:func:`matcher.matching.threshold.clustering_spec`).
    """

    method: Literal["connected_components", "average_link"] | None = None
    min_mean_weight: float = Field(default=0.0, ge=-50.0, le=50.0)
    unscored_pair_weight: float = Field(default=0.0, ge=-50.0, le=50.0)


class IncrementalSpec(StrictModel):
    """Where ``matcher match-incremental`` scores the new records (see ``docs/incremental.md``).

    ``auto`` scores in the driver with Splink on DuckDB (:mod:`matcher.matching.driver_scoring`) when
    the existing candidates plus the new records number at most ``driver_max_rows``, else
    with Splink on Spark; ``spark`` and ``duckdb`` force one engine. Both give the same scores.
    """

    scoring: Literal["auto", "spark", "duckdb"] = "auto"
    driver_max_rows: int = Field(default=1_000_000, ge=0)


class EnforcedSpec(StrictModel):
    """Matches the clustering must respect: pair lists (CSV files with ``id_l,id_r``) and exact rules.

    Each exact rule is a list of columns; records whose normalised values (trimmed,
    lower-cased) agree on every column of a rule, none null, are must-linked.
    """

    must_link: str | None = None
    cannot_link: str | None = None
    exact_rules: list[list[str]] = Field(default_factory=list)


class TransformConfig(StrictModel):
    """A matching transform: what to read, how to compare, how to trade precision for recall."""

    name: str
    inputs: list[InputSpec] = Field(min_length=1)
    primary_key: str
    link_type: Literal["dedupe_only", "link_only", "link_and_dedupe"] | None = None
    columns: list[ColumnSpec] = Field(min_length=1, max_length=100)
    blocking_rules: list[Union[BlockingRule, BlockingRuleSpec]] | Literal["auto"] = AUTO
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    precision_recall_tradeoff: float = Field(default=0.5, ge=0.0, le=1.0)
    # 'estimated': the threshold of best expected F-beta under the trained model (matcher.training.calibration);
    # 'weight': 20 * (precision_recall_tradeoff - 0.5); None: 'estimated' when training chose the deterministic rules
    threshold: Literal["estimated", "weight"] | None = None
    accuracy_cost_tradeoff: float = Field(default=0.5, ge=0.0, le=1.0)
    seed: int = 42
    truth_column: str | None = None
    output: str = "output"
    retain_columns: list[str] = Field(default_factory=list)
    graph: GraphSpec | None = None
    labels: LabelsSpec = Field(default_factory=LabelsSpec)
    enforced: EnforcedSpec | None = None
    clustering: ClusteringSpec = Field(default_factory=ClusteringSpec)
    incremental: IncrementalSpec = Field(default_factory=IncrementalSpec)
    # multi-source harmonization (optional; see matcher.config.harmonization)
    sources: list[SourceSpec] | None = None
    standardize: StandardizeSpec = Field(default_factory=StandardizeSpec)
    quality: QualitySpec = Field(default_factory=QualitySpec)
    golden: GoldenSpec | None = None
    _origin_hash: str | None = PrivateAttr(default=None)  # set on a config resolved from one the user wrote

    @model_validator(mode="before")
    @classmethod
    def _sources_feed_one_harmonized_input(cls, data: Any) -> Any:
        """With ``sources:``, matching sees one input: the harmonized rows keyed by ``record_id``."""
        if isinstance(data, dict) and data.get("sources") is not None:
            if "inputs" in data or "primary_key" in data:
                raise ValueError("give either 'sources' (each with its primary_key) or 'inputs' + 'primary_key', not both")
            data = {**data, "inputs": [{"name": HARMONIZED_INPUT, "path": "(sources)"}], "primary_key": RECORD_ID}
        return data

    @model_validator(mode="after")
    def _harmonized_columns_exist(self) -> "TransformConfig":
        if self.sources is None:
            if self.golden is not None:
                raise ValueError("golden: survivorship needs 'sources' (the canonical customer schema)")
            return self
        if not self.sources:
            raise ValueError("sources: at least one source is required")
        names = _unique([s.name for s in self.sources], "source names")
        known = {*CANONICAL_FIELDS, *DERIVED_FIELDS, *(c for s in self.sources for c in s.columns)}
        quality = self.quality
        named = {
            "columns": self.column_names,
            "retain_columns": self.retain_columns,
            "truth_column": [self.truth_column] if self.truth_column else [],
            "quality.required": quality.required,
            "quality.require_any": [f for group in quality.require_any for f in group],
            "quality.allowed_values": list(quality.allowed_values),
            "golden.fields": (self.golden.fields or []) if self.golden else [],
            "golden.rules": list(self.golden.rules) if self.golden else [],
            "golden.timestamp_column": [self.golden.timestamp_column]
            if self.golden and "most_recent" in (self.golden.default_rule, *self.golden.rules.values())
            else [],
        }
        for key, fields in named.items():
            # a pair from one source can be compared with one from another (matching on source_system)
            unknown = [f for f in fields if f not in known and not (key == "columns" and f == SOURCE_SYSTEM)]
            if unknown:
                raise ValueError(
                    f"{key}: {', '.join(unknown)} is neither a canonical field nor mapped by any source "
                    f"(canonical: {', '.join(CANONICAL_FIELDS)})"
                )
        if self.golden:
            unknown = [s for s in self.golden.source_priority if s not in names]
            if unknown:
                raise ValueError(f"golden.source_priority: unknown source(s) {', '.join(unknown)} (sources: {', '.join(names)})")
        compared = [c for c in self.column_names if c != SOURCE_SYSTEM]
        for i, source in enumerate(self.sources):
            mapped = {*source.columns, *(DERIVED_FIELDS if "first_name" in source.columns else ())}
            if compared and not mapped.intersection(compared):
                raise ValueError(
                    f"sources.{i} ({source.name}) maps none of the matching columns ({', '.join(compared)}): "
                    "its records could never match another; map at least one of them"
                )
        return self

    @field_validator("inputs")
    @classmethod
    def _unique_input_names(cls, inputs: list[InputSpec]) -> list[InputSpec]:
        _unique([i.name for i in inputs], "input names")
        return inputs

    @field_validator("columns")
    @classmethod
    def _unique_columns(cls, columns: list[ColumnSpec]) -> list[ColumnSpec]:
        _unique([c.name for c in columns], "columns")
        names = {c.name for c in columns if c.kind is ComparisonKind.name}
        for c in columns:
            if c.swapped_with is not None and c.swapped_with not in names:
                raise ValueError(f"{c.name}: swapped_with {c.swapped_with!r} is not a compared column of kind 'name'")
        return columns

    @model_validator(mode="after")
    def _link_type_fits_inputs(self) -> "TransformConfig":
        if self.sources is not None:
            if self.link_type in ("link_only", "link_and_dedupe") and len(self.sources) < 2:
                raise ValueError(
                    f"link_type {self.link_type!r} needs at least two sources (it pairs records of different sources); "
                    f"this config has {len(self.sources)}"
                )
        elif self.link_type in ("link_only", "link_and_dedupe") and len(self.inputs) < 2:
            raise ValueError(f"link_type {self.link_type!r} needs at least two inputs")
        if self.link_type == "dedupe_only" and len(self.inputs) > 1:
            raise ValueError("link_type 'dedupe_only' takes exactly one input")
        if self.primary_key in self.column_names and self.sources is None:
            raise ValueError(f"primary_key {self.primary_key!r} cannot also be a matching column")
        reserved = set(RESERVED_COLUMNS) | ({RECORD_ID} if len(self.inputs) > 1 else set())
        named = [self.primary_key, *self.column_names, *self.retain_columns, self.truth_column]
        clashes = sorted(reserved.intersection(named))
        if clashes:
            raise ValueError(f"column name(s) {', '.join(clashes)} are reserved for matcher's outputs; rename them")
        if self.enforced is not None:
            known = {*self.column_names, *self.retain_columns}
            unknown = sorted({c for rule in self.enforced.exact_rules for c in rule} - known)
            if unknown:
                raise ValueError(
                    f"enforced.exact_rules name column(s) {', '.join(unknown)} that are neither matching columns nor retain_columns"
                )
        return self

    @model_validator(mode="after")
    def _clustering_from_labels_needs_average_link(self) -> "TransformConfig":
        if self.labels.clustering_from_labels and self.clustering.method != "average_link":
            raise ValueError(
                "labels.clustering_from_labels learns clustering.min_mean_weight, which only "
                f"clustering.method 'average_link' uses (got {self.clustering.method!r})"
            )
        return self

    @field_validator("blocking_rules")
    @classmethod
    def _sql_rules_parse(cls, rules: list | str) -> list | str:
        for i, rule in enumerate(_rules_or_auto(rules) if isinstance(rules, list) else []):
            _check_sql_rule(rule.rule if isinstance(rule, BlockingRuleSpec) else rule, i)
        return rules

    # --- derived views -------------------------------------------------------------
    @property
    def resolved_link_type(self) -> str:
        """``dedupe_only`` for one input, ``link_and_dedupe`` for several, unless set."""
        return self.link_type or ("dedupe_only" if len(self.inputs) == 1 else "link_and_dedupe")

    @property
    def links_sources(self) -> bool:
        """A ``sources:`` config whose link type pairs across sources (``link_only``, ``link_and_dedupe``):
        Splink sees one table per source (``source_dataset`` = the source's name)."""
        return self.sources is not None and self.resolved_link_type != "dedupe_only"

    @property
    def dataset_names(self) -> list[str]:
        """The tables Splink is given: one per source when :attr:`links_sources`, else one per input."""
        if self.links_sources:
            return [s.name for s in self.sources or []]
        return [i.name for i in self.inputs]

    @property
    def needs_formats(self) -> bool:
        """Some postcode column has ``format: auto`` still to be decided from the data."""
        return any(c.needs_format for c in self.columns)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def automatic(self) -> list[str]:
        """The rule lists left to the data (``blocking_rules``, ``training.deterministic_rules``, ...)."""
        parts = {
            "blocking_rules": self.blocking_rules,
            "training.deterministic_rules": self.training.deterministic_rules,
            "training.em_blocking_rules": self.training.em_blocking_rules,
        }
        return [key for key, rules in parts.items() if rules == AUTO]

    def resolved(self, blocking_rules: list | None = None, training: dict[str, Any] | None = None) -> "TransformConfig":
        """This config with the rules chosen for its automatic parts; it keeps this config's :meth:`model_hash`.

        ``blocking_rules`` and ``training`` (``deterministic_rules``, ``em_blocking_rules``,
        ``deterministic_recall``) are JSON as :mod:`matcher.training.setup` records them in the
        model's metadata; only the parts this config leaves to the data are taken.
        """
        update: dict[str, Any] = {}
        if blocking_rules is not None and self.blocking_rules == AUTO:
            update["blocking_rules"] = [BlockingRuleSpec.model_validate(r) if isinstance(r, dict) else r for r in blocking_rules]
        if training:
            chosen = {k: v for k, v in training.items() if getattr(self.training, k) == AUTO or k == "deterministic_recall"}
            if self.training.deterministic_rules != AUTO:
                chosen.pop("deterministic_recall", None)  # the user's recall goes with the user's rules
            update["training"] = self.training.model_copy(update=chosen)
        copy = self.model_copy(update=update)
        copy._origin_hash = self.model_hash()
        return copy

    @property
    def active_blocking_rules(self) -> list[BlockingRule]:
        """The candidate-generation rules that ``accuracy_cost_tradeoff`` switches on."""
        if self.blocking_rules == AUTO:
            raise RuntimeError("blocking rules are chosen from the data at training: resolve the config first (TrainedModel.configure)")
        rules = []
        for spec in self.blocking_rules:
            if isinstance(spec, BlockingRuleSpec):
                if self.accuracy_cost_tradeoff >= spec.min_accuracy_cost_tradeoff:
                    rules.append(spec.rule)
            else:
                rules.append(spec)
        return rules

    @property
    def u_max_pairs(self) -> float:
        """Pairs sampled to estimate u: explicit, or ``10 ** (5 + 2 * accuracy_cost_tradeoff)``."""
        if self.training.u_max_pairs is not None:
            return self.training.u_max_pairs
        return 10 ** (5 + 2 * self.accuracy_cost_tradeoff)

    def model_hash(self) -> str:
        """Hash of everything that shapes the trained model (not paths or thresholds).

        A config :meth:`resolved` from another keeps the hash of the one the user wrote."""
        if self._origin_hash is not None:
            return self._origin_hash
        shaping = self.model_dump(
            mode="json",
            include={"primary_key", "link_type", "columns", "training", "seed", "accuracy_cost_tradeoff"},
        )
        shaping["resolved_link_type"] = self.resolved_link_type
        # as written: a postcode format decided from the data (format: auto) does not change the hash
        shaping["columns"] = [c.as_written() for c in self.columns]
        if self.sources is not None:  # what the harmonized rows look like shapes the model too
            shaping["harmonization"] = self.model_dump(mode="json", include={"sources", "standardize", "quality"})
            for source in shaping["harmonization"]["sources"]:  # where a source lives does not shape the model
                source.pop("path", None)
        blob = json.dumps(shaping, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _format_validation_error(source: str, err: ValidationError) -> str:
    problems = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "enum":
            msg = f"unknown value {e['input']!r} ({msg.lower()})"
        problems.append(f"{where}: {msg}")
    return f"{source}: " + "; ".join(problems)


def config_from_dict(data: dict[str, Any], *, source: str = "<config>", base_dir: Path | str | None = None) -> TransformConfig:
    """Validate a configuration mapping; relative input paths resolve against ``base_dir``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        config = TransformConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(source, err)) from None
    if base_dir is None:
        return config
    update: dict[str, Any] = {"output": _resolve(config.output, base_dir)}
    if config.sources is not None:
        update["sources"] = [s.model_copy(update={"path": _resolve(s.path, base_dir)}) for s in config.sources]
    else:
        update["inputs"] = [i.model_copy(update={"path": _resolve(i.path, base_dir)}) for i in config.inputs]
    if config.enforced is not None:
        files = {k: _resolve(v, base_dir) for k in ("must_link", "cannot_link") if (v := getattr(config.enforced, k))}
        update["enforced"] = config.enforced.model_copy(update=files)
    return config.model_copy(update=update)


def _resolve(path: str, base_dir: Path | str) -> str:
    if "://" in path or Path(path).is_absolute():
        return path
    if isinstance(base_dir, str):  # a remote config's folder URI
        scheme, rest = base_dir.split("://", 1)
        bucket, _, prefix = rest.partition("/")
        return f"{scheme}://{bucket}/{posixpath.normpath(posixpath.join('/' + prefix, path)).lstrip('/')}"
    return str((base_dir / path).resolve())


def load_config(path: str | Path) -> TransformConfig:
    """Read and validate a YAML configuration, from a file or a URI (``s3://``, read through Hadoop).

    Relative paths inside it are resolved against the project root when the file sits
    in a ``configs/`` folder, otherwise against the file's own folder (the same for a URI).
    """
    try:
        text = _read_config_text(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: cannot read config (not UTF-8: {err.reason} at byte {err.start})") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config ({err})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML ({where}{problem})") from None
    if data is None:
        raise ConfigError(f"{path}: config file is empty")
    if "://" in str(path):
        folder = str(path).rsplit("/", 1)[0]
        base_dir: Path | str = folder.rsplit("/", 1)[0] if folder.endswith("/configs") else folder
    else:
        local = Path(path).resolve().parent
        base_dir = local.parent if local.name == "configs" else local
    return config_from_dict(data, source=str(path), base_dir=base_dir)


def _read_config_text(path: str | Path) -> str:
    if "://" not in str(path):
        return Path(path).read_text(encoding="utf-8")
    from matcher.runtime.remote_folder import hadoop_error, read_bytes

    try:
        return read_bytes(str(path)).decode("utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        raise
    except Exception as err:  # noqa: BLE001 - Hadoop's errors are long; one line says it
        raise ConfigError(f"{path}: cannot read config ({hadoop_error(err)})") from None
