"""Build a starting ``sources:`` config from profiled files (``matcher init``).

Per source it picks the primary key, maps each column onto a canonical field
(:data:`~matcher.config.harmonization.CANONICAL_FIELDS`) or a pass-through name — the
same name in every source for columns that mean the same (by kind, by name, by shared
values) — and writes the date formats it found. The top level gets the ``standardize``
options the values call for (:mod:`matcher.profiling.cleaning`), the comparison columns, a
``quality.require_any`` over the identifying fields, the truth column and the output folder;
no blocking rules and no training section, which ``matcher run`` chooses itself.
:meth:`StartingConfig.explanation` says what was decided and why, with counts, shares and
value shapes only: never a value.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from matcher.config.base import RECORD_ID, RESERVED_COLUMNS
from matcher.config.harmonization import ADDRESS_PARTS, CANONICAL_FIELDS, DERIVED_FIELDS, SOURCE_SYSTEM
from matcher.profiling.cleaning import standardize_options
from matcher.profiling.kinds import (
    ISO_DATE, OTHER_PARTY, OWN, Kind, detect_kind, key_name_rank, name_hint, name_tokens,
)
from matcher.profiling.profile import MAX_ROWS, FileProfile, profile_file
from matcher.runtime.errors import ConfigError, InputDataError

log = logging.getLogger(__name__)

IDENTIFYING = ("first_name", "last_name", "full_name", "dob", "email", "phone", "national_id")
"""Fields of which ``quality.require_any`` asks a row to have at least one."""

_COMPARED_AS = {"first_name": "first_name_canonical"}
"""Canonical fields compared under a derived name (nicknames resolved)."""

_ORDER = ("first_name", "middle_name", "last_name", "full_name", "dob", "email", "phone", "house_number", "street",
          "unit", "postcode", "city", "state", "country", "national_id")
_KEY_LABELS = {"id", "code", "numeric", "category", "text", "free_text", "constant"}
_OVERLAP = 0.3
"""Share of one column's sampled distinct values the other must hold for two differently named
pass-through columns of the same kind to be taken as one."""
_RESERVED = {SOURCE_SYSTEM, RECORD_ID, *RESERVED_COLUMNS, *DERIVED_FIELDS}


@dataclass(frozen=True)
class ColumnDecision:
    """What became of one source column: mapped to ``target`` (None: left out) and compared or not."""

    column: str
    kind: Kind
    target: str | None
    compared: bool
    note: str


@dataclass(frozen=True)
class SourceDecision:
    """One source's entry: its name, path as written, key and column decisions."""

    name: str
    profile: FileProfile
    path: str
    key: str
    key_reason: str
    columns: tuple[ColumnDecision, ...]
    date_formats: tuple[str, ...]

    @property
    def mapping(self) -> dict[str, str]:
        """Target name → source column, as written under the source's ``columns``."""
        return {d.target: d.column for d in self.columns if d.target is not None}


@dataclass(frozen=True)
class StartingConfig:
    """The config mapping ``matcher init`` writes and the decisions behind it."""

    config: dict[str, Any]
    sources: tuple[SourceDecision, ...]
    warnings: tuple[str, ...] = field(default=())
    standardized: dict[str, str] = field(default_factory=dict)
    """The ``standardize`` options turned on, each with its reason."""

    def explanation(self) -> str:
        """What was decided and why: keys, mappings, kinds and skipped columns (no values)."""
        lines = [f"warning: {w}" for w in self.warnings]
        for s in self.sources:
            p = s.profile
            rows = f"first {p.rows} rows profiled" if p.truncated else f"{p.rows} rows"
            lines.append(f"source {s.name} ({s.path}, {p.format}, {rows}): primary key {s.key} ({s.key_reason})")
            if s.date_formats:
                lines.append(f"  date_formats: {', '.join(s.date_formats)}")
            width = max(len(d.column) for d in s.columns) if s.columns else 0
            for d in s.columns:
                if d.target is None:
                    continue
                alias = _COMPARED_AS.get(d.target, d.target)
                how = "not compared" if not d.compared else f"compared as {alias}" if alias != d.target else "compared"
                how = f"{how} ({self._kind_of(alias)})" if d.compared else how
                label = f" [{d.kind.label}]" if d.kind.label != d.target else ""
                lines.append(f"  {d.column:<{width}} -> {d.target}{label}, {how}: {d.note}")
            skipped = [d for d in s.columns if d.target is None]
            for d in skipped:
                lines.append(f"  {d.column:<{width}} skipped: {d.note}")
        compared = ", ".join(f"{c['name']} ({c['kind']})" for c in self.config["columns"])
        lines.append(f"comparison columns: {compared}")
        if any(c["name"] == SOURCE_SYSTEM for c in self.config["columns"]):
            lines.append(f"{SOURCE_SYSTEM}: compared, so the model learns whether a source holds duplicates")
        for option, why in self.standardized.items():
            lines.append(f"standardize.{option}: on: {why}")
        if "quality" in self.config:
            groups = self.config["quality"]["require_any"]
            lines.append(f"quality: every row needs one of {', '.join(groups[0])}")
        lines.append("blocking rules and training: none written (matcher run chooses them)")
        return "\n".join(lines)

    def _kind_of(self, column: str) -> str:
        return next((c["kind"] for c in self.config["columns"] if c["name"] == column), "?")


# --- names -------------------------------------------------------------------------------------------

def snake(name: str) -> str:
    """A column or file name as a snake_case identifier (``"Ship ZIP"`` → ``ship_zip``)."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    out = re.sub(r"[^a-z0-9]+", "_", spaced.lower()).strip("_") or "column"
    return f"c_{out}" if out[0].isdigit() else out


def source_names(paths: Sequence[Path]) -> list[str]:
    """One unique source name per file, from its name without extensions."""
    names: list[str] = []
    for path in paths:
        base = snake(path.name.split(".")[0] or path.name)
        base = "s_" + base[2:] if base.startswith("c_") else base
        name, n = base, 2
        while name in names:
            name, n = f"{base}_{n}", n + 1
        names.append(name)
    return names


def config_dir(output: Path) -> Path:
    """The folder relative paths in a config at ``output`` resolve against (see ``load_config``)."""
    folder = output.resolve().parent
    return folder.parent if folder.name == "configs" else folder


def written_path(source: Path, base: Path) -> str:
    """``source`` relative to ``base`` when it lies inside it, else absolute."""
    resolved = source.resolve()
    try:
        return resolved.relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(resolved)


# --- per source ----------------------------------------------------------------------------------------

def choose_key(profile: FileProfile, kinds: dict[str, Kind], truth_column: str | None) -> tuple[str, str]:
    """The primary key: a column unique and non-null in every profiled row that is no person attribute,
    preferring key-like names (``id``, ``rec_id``, ``*_id``, ``*_no``). Raises :class:`InputDataError`."""
    candidates = [
        c for c in profile.columns
        if c.name != truth_column and c.non_null == profile.rows and c.distinct == profile.rows
        and (kinds[c.name].label in _KEY_LABELS or key_name_rank(c.name) == 0)
    ]
    if not candidates:
        raise InputDataError(
            f"{profile.path}: no column is unique and non-null in every row, so none can be the source's "
            f"primary_key (matcher needs one per source); add an id column"
        )
    position = {c.name: i for i, c in enumerate(profile.columns)}
    key = min(candidates, key=lambda c: (key_name_rank(c.name), kinds[c.name].label != "id", position[c.name]))
    scope = f"the first {MAX_ROWS:,}" if profile.truncated else f"all {profile.rows}"
    named = "; its name says key" if key_name_rank(key.name) < 2 else ""
    return key.name, f"unique and non-null in {scope} rows{named}"


def _content_dates(kinds: dict[str, Kind]) -> dict[str, Kind]:
    """A source with no date of birth but one date column whose name says nothing: that is taken as the birth date."""
    if any(k.field == "dob" for k in kinds.values()):
        return kinds
    dates = [name for name, k in kinds.items() if k.label == "date"]
    if len(dates) != 1:
        return kinds
    k = kinds[dates[0]]
    promoted = Kind("dob", "dob", "birth_date", f"{k.reason}; the source's only date, taken as date of birth",
                    date_formats=k.date_formats)
    return {**kinds, dates[0]: promoted}


@dataclass
class _PassThrough:
    """A pass-through name in use: its label, sampled distinct values, the sources mapping it."""

    label: str
    values: set[str]
    sources: list[str]
    overlap: float = 0.0


def _overlap(a: set[str], b: set[str]) -> float:
    return len(a & b) / min(len(a), len(b)) if a and b else 0.0


def _pass_through_name(column: str, kind: Kind, values: set[str], source: str,
                       registry: dict[str, _PassThrough], used: set[str]) -> str:
    """The pass-through name for a column: one already used by another source for a column of the same
    name, or of the same kind sharing values; else its own snake_case name made unique."""
    base = snake(column)
    if base.startswith("raw_") or base in _RESERVED or base in CANONICAL_FIELDS:
        base = f"{base}_value"
    matches = []
    for name, entry in registry.items():
        if name in used or source in entry.sources:
            continue
        overlap = _overlap(values, entry.values)
        if name != base and bool(OTHER_PARTY & set(name_tokens(column))) != bool(OTHER_PARTY & set(name_tokens(name))):
            continue  # another party's column is never the person's, whatever values they share
        if name == base or (entry.label == kind.label and overlap >= _OVERLAP):
            matches.append((name != base, -overlap, name, overlap))
    if matches:
        _, _, name, overlap = min(matches)
        entry = registry[name]
        entry.sources.append(source)
        entry.values |= values
        entry.overlap = max(entry.overlap, overlap)
        return name
    name, n = base, 2
    while name in registry or name in used:
        name, n = f"{base}_{n}", n + 1
    registry[name] = _PassThrough(kind.label, set(values), [source])
    return name


def _distinct_sample(profile: FileProfile, column: str, limit: int = 5000) -> set[str]:
    values = profile.column(column).sample.str.lower().drop_duplicates().head(limit)
    return set(values)


# --- the whole config ----------------------------------------------------------------------------------

def starting_config(
    sources: Sequence[str | Path], *, output: str | Path, truth_column: str | None = None, name: str | None = None,
) -> StartingConfig:
    """Profile ``sources`` and build the config mapping ``matcher init`` writes to ``output``.

    Raises :class:`InputDataError` naming the file for a missing, empty or unreadable source,
    a source without a usable primary key or without the truth column, or a source sharing no
    compared column with the others; :class:`ConfigError` for no or repeated sources.
    """
    paths = [Path(s) for s in sources]
    if not paths:
        raise ConfigError("matcher init: give at least one --source")
    repeated = sorted({str(p) for p in paths if sum(q.resolve() == p.resolve() for q in paths) > 1})
    if repeated:
        raise ConfigError(f"{repeated[0]}: source given more than once")
    output = Path(output)
    base = config_dir(output)
    config_name = snake(name or output.name.split(".")[0])
    profiles = [profile_file(p) for p in paths]
    names = source_names(paths)
    warnings = [f"{p.path}: source has one row; nothing in it can be learned from, but it is kept"
                for p in profiles if p.rows == 1]
    for w in warnings:
        log.warning("%s", w)

    registry: dict[str, _PassThrough] = {}
    truth_name = None
    if truth_column is not None:
        truth_name = truth_column if re.fullmatch(r"[A-Za-z_]\w*", truth_column) else snake(truth_column)
        if truth_name in CANONICAL_FIELDS or truth_name in _RESERVED or truth_name.startswith("raw_"):
            truth_name = f"{snake(truth_column)}_truth"
    drafts = []
    all_kinds = []
    for profile in profiles:
        if truth_column is not None and truth_column not in [c.name for c in profile.columns]:
            raise InputDataError(f"{profile.path}: truth column {truth_column!r} is missing "
                                 f"(it has: {', '.join(c.name for c in profile.columns)})")
        kinds = _content_dates({c.name: detect_kind(c) for c in profile.columns})
        all_kinds.append((kinds, *choose_key(profile, kinds, truth_column)))
    holders = field_holders(profiles, [(kinds, {key, truth_column}) for kinds, key, _ in all_kinds])
    for source, profile, (kinds, key, key_reason), holder in zip(names, profiles, all_kinds, holders):
        used: set[str] = set()
        decisions = []
        for column in profile.columns:
            kind = kinds[column.name]
            if column.name == key:
                decisions.append(ColumnDecision(column.name, kind, None, False, "the primary key (record_id is <source>:<key>)"))
            elif column.name == truth_column:
                decisions.append(ColumnDecision(column.name, kind, truth_name, False, "the truth column: passed through, never compared"))
                used.add(truth_name)
            elif kind.comparison is None and kind.field is None:
                decisions.append(ColumnDecision(column.name, kind, None, False, kind.reason))
            elif kind.field is not None and holder.get(kind.field) == column.name:
                used.add(kind.field)
                decisions.append(ColumnDecision(column.name, kind, kind.field, kind.comparison is not None,
                                                kind.reason + holder.why(kind.field)))
            elif kind.comparison is None:  # a second timestamp: nothing to do with it
                decisions.append(ColumnDecision(column.name, kind, None, False, f"{kind.reason}; {kind.field} is already mapped"))
            else:
                if kind.field is not None:  # a second phone, date, ...: passed through as it is
                    kind = _second(kind)
                target = _pass_through_name(column.name, kind, _distinct_sample(profile, column.name), source, registry, used)
                used.add(target)
                decisions.append(ColumnDecision(column.name, kind, target, True, kind.reason))
        drafts.append((source, profile, key, key_reason, decisions))

    decided = [_settle(source, profile, key, key_reason, decisions, registry, base)
               for source, profile, key, key_reason, decisions in drafts]
    _require_common_columns(decided)
    options = standardize_options(decided)
    data = _config_dict(config_name, decided, truth_name, options)
    return StartingConfig(data, tuple(decided), tuple(warnings), options)


_ADDRESS_WORDS = {"address", "addr", "adr"}


class FieldHolders(dict):
    """For one source: the column that holds each canonical field, and why when several could."""

    def __init__(self) -> None:
        super().__init__()
        self.reasons: dict[str, str] = {}

    def why(self, field_name: str) -> str:
        return f"; {self.reasons[field_name]}" if field_name in self.reasons else ""


def _qualifier(column: str, field_name: str) -> tuple[str, ...]:
    """The words of a column's name beside its field's (``mailing_address_zipcode`` → ``mailing``): what
    tells apart two addresses (or phones, ...) of one source."""
    spaced = re.sub(r"(\d+)", r" \1 ", re.sub(r"([a-z])([A-Z])", r"\1 \2", column))
    tokens = [t for t in re.split(r"[^a-z0-9]+", spaced.lower()) if t]  # digits kept: street_1, street_2
    field_words = {t for t in tokens if name_hint(t) == field_name} | _ADDRESS_WORDS
    field_words |= {"street", "number", "no", "num", "nr", "name", "code"}
    return tuple(t for t in tokens if t not in field_words)


def field_holders(profiles: Sequence[FileProfile], kinds: Sequence[tuple[dict[str, Kind], set]]) -> list[FieldHolders]:
    """Per source, which column holds each canonical field when several columns could
    (``employer_zipcode`` and ``mailing_address_zipcode``): a column named as another party's
    (employer, company, emergency contact, ...) only when no other can; then the one whose
    values the other sources' columns of that field share most (the parts of an address are
    chosen together, by the words that tell the addresses apart); then the first."""
    candidates = [
        {f: [c for c, k in kind.items() if k.field == f and c not in skip] for f in {k.field for k in kind.values() if k.field}}
        for kind, skip in kinds
    ]
    samples: dict[tuple[int, str], set[str]] = {}

    def sample(i: int, column: str) -> set[str]:
        if (i, column) not in samples:
            samples[(i, column)] = _distinct_sample(profiles[i], column)
        return samples[(i, column)]

    def shared(i: int, column: str, field_name: str) -> float:
        """The largest share of this column's values that another source's candidate for the field holds."""
        others = [(j, c) for j, fields in enumerate(candidates) if j != i for c in fields.get(field_name, [])]
        return max((_overlap(sample(i, column), sample(j, c)) for j, c in others), default=0.0)

    result = []
    for i, fields in enumerate(candidates):
        holders = FieldHolders()
        groups: dict[tuple[str, ...], list[float]] = {}  # an address's shares, by the words naming it
        contested = {f: cs for f, cs in fields.items() if len(cs) > 1}
        for f, columns in contested.items():
            for c in columns:
                if f in ADDRESS_PARTS:
                    groups.setdefault(_qualifier(c, f), []).append(shared(i, c, f))
        for f, columns in fields.items():
            if not columns:
                continue
            if f not in contested:
                holders[f] = columns[0]
                continue

            def rank(c: str, f: str = f) -> tuple:
                words = set(name_tokens(c))
                party = 2 if words & OTHER_PARTY else 0 if words & OWN else 1
                evidence = sum(groups[_qualifier(c, f)]) / len(groups[_qualifier(c, f)]) if f in ADDRESS_PARTS else shared(i, c, f)
                return party, -round(evidence, 3), fields[f].index(c)

            ranked = sorted(columns, key=rank)
            holders[f] = ranked[0]
            best, runner_up = rank(ranked[0]), rank(ranked[1])
            if best[0] != runner_up[0]:
                why = "named as the person's own" if best[0] == 0 else "the others are named as another party's"
            elif best[1] != runner_up[1]:
                why = f"shares more values with the other sources ({-best[1]:.0%} against {-runner_up[1]:.0%})"
            else:
                why = "the first of equals"
            holders.reasons[f] = f"chosen over {', '.join(ranked[1:])}: {why}"
        result.append(holders)
    return result


def _second(kind: Kind) -> Kind:
    """A column whose canonical field another column of the source already holds: compared as it is,
    which for a date is exact unless it is ISO (pass-through values are not standardized)."""
    comparison = kind.comparison
    if comparison in ("date", "birth_date") and kind.date_formats not in ((), (ISO_DATE,)):
        comparison = "exact"
    return Kind(kind.label, None, comparison, f"{kind.reason}; {kind.field} is already mapped, passed through",
                kind.term_frequency, kind.date_formats, kind.region)


def _settle(source: str, profile: FileProfile, key: str, key_reason: str, decisions: list[ColumnDecision],
            registry: dict[str, _PassThrough], base: Path) -> SourceDecision:
    """Decide which pass-through columns are compared, now that every source is mapped: an identifier or
    all-distinct free text only when another source shares it (and its values)."""
    settled = []
    compared = {d.target for d in decisions if d.compared}
    for d in decisions:
        why_not = _not_evidence(d, profile, compared)
        if why_not:
            settled.append(ColumnDecision(d.column, d.kind, d.target, False, f"{d.kind.reason}; {why_not}"))
            continue
        entry = registry.get(d.target) if d.target else None
        if entry is not None and d.compared and d.kind.label in ("id", "free_text") and d.kind.field is None:
            shared = len(entry.sources) > 1 and entry.overlap > 0
            unique = profile.column(d.column).distinct_share >= 0.95
            if d.kind.label == "id" or unique:
                if not shared:
                    why = "all values distinct" if unique else "an identifier"
                    d = ColumnDecision(d.column, d.kind, None, False, f"{d.kind.reason}; {why} and in no other source")
                else:
                    d = ColumnDecision(d.column, d.kind, d.target, True,
                                       f"{d.kind.reason}; shared with another source, values overlap "
                                       f"(a ground truth? then pass --truth-column {d.column})")
        if d.kind.comparison == "date" and d.kind.field is None and d.kind.date_formats not in ((), (ISO_DATE,)):
            d = ColumnDecision(d.column, _second_date(d.kind), d.target, d.compared, d.note + "; compared exactly (not ISO)")
        settled.append(d)
    formats = next((d.kind.date_formats for d in settled if d.target == "dob"), ())
    formats = () if formats in ((), (ISO_DATE,)) else formats
    return SourceDecision(source, profile, written_path(profile.path, base), key, key_reason, tuple(settled), formats)


FEW_VALUES = 20
"""A category with fewer distinct values (sex aside) says little about who a record is: left out."""
_GROUP_TOKENS = {"household", "group", "team", "company", "employer", "account"}


def _not_evidence(d: ColumnDecision, profile: FileProfile, compared: set[str | None]) -> str | None:
    """Why a compared column would mislead the model (which treats comparisons as independent
    evidence of one person), or None: an address part beside the one that stands for the address,
    a full name beside first and last name, an age beside a date of birth, an id of a group of
    people, a category of a few values."""
    if not d.compared:
        return None
    if d.target in ADDRESS_PARTS:
        stands_for = next(part for part in ADDRESS_PARTS if part in compared)
        if stands_for != d.target:
            return f"{stands_for} is compared: the parts of one address repeat one another's evidence"
    if d.kind.label == "full_name" and {"first_name", "last_name"} <= compared:
        return "first and last name are compared: a full name repeats their evidence"
    if name_tokens(d.column) and "age" in name_tokens(d.column) and "dob" in compared:
        return "the date of birth is compared: an age repeats it (and changes between sources)"
    if _GROUP_TOKENS & set(name_tokens(d.column)) and d.kind.label in ("id", "code", "free_text", "numeric", "category", "text"):
        return "an identifier of a group (people in one household or account share it), not of a person"
    if OTHER_PARTY & set(name_tokens(d.column)):
        return "named as another party's (an employer, a contact person, ...): it describes them, not the person"
    if d.kind.label == "category" and name_hint(d.column) != "sex" and profile.column(d.column).distinct < FEW_VALUES:
        return f"a category of {profile.column(d.column).distinct} values: little evidence of identity"
    return None


def _second_date(kind: Kind) -> Kind:
    return Kind(kind.label, kind.field, "exact", kind.reason, kind.term_frequency, kind.date_formats, kind.region)


def _require_common_columns(sources: list[SourceDecision]) -> None:
    """Every source must share a compared column with the others, and something must be compared."""
    compared = {s.name: {d.target for d in s.columns if d.compared} for s in sources}
    if not any(compared.values()):
        raise InputDataError(f"{sources[0].profile.path}: no column to compare (every column was skipped)")
    if len(sources) < 2:
        return
    for s in reversed(sources):  # two sources sharing nothing: the later one is named
        others = set().union(*(c for n, c in compared.items() if n != s.name))
        if not compared[s.name] & others:
            mine = ", ".join(sorted(compared[s.name])) or "nothing"
            raise InputDataError(f"{s.profile.path}: source {s.name!r} has no column in common with the other "
                                 f"sources (its compared columns: {mine})")


def _comparisons(sources: list[SourceDecision]) -> list[dict[str, Any]]:
    """One comparison per compared target (the first source's kind wins), canonical fields first; the
    first and last name each swapped with the other."""
    found: dict[str, dict[str, Any]] = {}
    for s in sources:
        for d in s.columns:
            if not d.compared or d.target is None:
                continue
            name = _COMPARED_AS.get(d.target, d.target)
            if name in found:
                if d.kind.comparison == "postcode":  # postcodes in any source: levels by format
                    found[name]["kind"] = "postcode"
                continue
            spec: dict[str, Any] = {"name": name, "kind": d.kind.comparison}
            if d.kind.term_frequency and d.kind.comparison != "initial":
                spec["term_frequency"] = True
            found[name] = spec
    first, last = (found.get(_COMPARED_AS.get(f, f), {}) for f in ("first_name", "last_name"))
    if first.get("kind") == last.get("kind") == "name":  # a form may take one for the other
        first["swapped_with"], last["swapped_with"] = last["name"], first["name"]
    rank = {f: i for i, f in enumerate(_ORDER)}
    targets = {_COMPARED_AS.get(d.target, d.target): d.kind.label for s in sources for d in s.columns if d.target}
    order = sorted(found, key=lambda n: rank.get(next((f for f, a in _COMPARED_AS.items() if a == n), n),
                                                 rank.get(targets.get(n, ""), len(rank))))
    return [found[n] for n in order]


def _config_dict(name: str, sources: list[SourceDecision], truth_name: str | None,
                 options: dict[str, str]) -> dict[str, Any]:
    entries = []
    for s in sources:
        entry: dict[str, Any] = {"name": s.name, "path": s.path, "format": s.profile.format}
        if s.profile.options:
            entry["options"] = dict(s.profile.options)
        entry["primary_key"] = s.key
        if s.date_formats:
            entry["date_formats"] = list(s.date_formats)
        entry["columns"] = s.mapping
        entries.append(entry)
    data: dict[str, Any] = {"name": name, "sources": entries}
    regions = {d.kind.region for s in sources for d in s.columns if d.target == "postcode" and d.kind.region}
    standardize: dict[str, Any] = dict.fromkeys(options, True)
    if len(regions) == 1 and regions != {"US"} and any("phone" in s.mapping for s in sources):
        standardize = {"default_region": regions.pop(), **standardize}
    if standardize:
        data["standardize"] = standardize
    mapped = {t for s in sources for t, _ in s.mapping.items()}
    labels = {d.target: d.kind.label for s in sources for d in s.columns if d.target}
    identifying = [t for t in sorted(mapped, key=lambda t: IDENTIFYING.index(labels[t]) if labels[t] in IDENTIFYING else 99)
                   if labels[t] in IDENTIFYING]
    if identifying:
        data["quality"] = {"require_any": [identifying]}
    data["columns"] = _comparisons(sources)
    if len(sources) > 1:  # the model learns whether one source lists a person twice (m of "same source")
        data["columns"].append({"name": SOURCE_SYSTEM, "kind": "exact"})
    if truth_name is not None:
        data["truth_column"] = truth_name
    data["output"] = f"output/{name}"
    return data


# --- writing ---------------------------------------------------------------------------------------------

class _Flow(dict):
    """A mapping written on one line (``{name: email, kind: email}``)."""


class _FlowList(list):
    """A list written on one line (``[dob, email, phone]``)."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v.items(), flow_style=True))
_Dumper.add_representer(_FlowList, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))


def config_yaml(data: dict[str, Any], header: str = "") -> str:
    """The config as YAML in the order built, comparison columns and short lists on one line each."""
    shaped = dict(data)
    shaped["columns"] = [_Flow(c) for c in data["columns"]]
    shaped["sources"] = [{k: (_FlowList(v) if k == "date_formats" else _Flow(v) if k == "options" else v)
                          for k, v in s.items()} for s in data["sources"]]
    if "quality" in data:
        shaped["quality"] = {k: [_FlowList(g) for g in v] for k, v in data["quality"].items()}
    body = yaml.dump(shaped, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
    return header + body


def check_config(data: dict[str, Any], where: str = "matcher init") -> None:
    """Validate the config as ``matcher run`` will (:class:`ConfigError` naming the key otherwise)."""
    from matcher.config.transform import config_from_dict

    config_from_dict(data, source=where)


def write_starting_config(
    sources: Sequence[str | Path], output: str | Path, *, truth_column: str | None = None,
    name: str | None = None, force: bool = False,
) -> str:
    """Profile ``sources``, write a starting config to ``output`` and return the explanation.

    Refuses (:class:`ConfigError`) to overwrite an existing ``output`` unless ``force``.
    The config runs as is with ``matcher run --config OUTPUT``.
    """
    output = Path(output)
    if output.exists() and not force:
        raise ConfigError(f"{output}: already exists; choose another --output or pass --force to overwrite it")
    if output.exists() and output.is_dir():
        raise ConfigError(f"{output}: is a folder; --output names the config file to write")
    result = starting_config(sources, output=output, truth_column=truth_column, name=name)
    check_config(result.config)
    header = ("# Written by `matcher init` from the first rows of each source: review the mappings and kinds.\n"
              "# Blocking rules and training are left out: `matcher run` chooses them.\n")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    tmp.write_text(config_yaml(result.config, header), encoding="utf-8")
    tmp.replace(output)
    n = len(result.config["columns"])
    return (result.explanation() + f"\nwrote {output} ({len(result.sources)} source(s), {n} comparison columns); "
            f"run it with: matcher run --config {output}")
