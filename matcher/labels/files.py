"""Labels in FindMatches' file format: read, validate, turn into pairs, store with the transform.

A labeling file is a UTF-8 CSV (no byte-order mark) whose first columns are
``labeling_set_id`` and ``label``, then the source columns (the primary key among them;
``source_dataset`` too when the transform has several inputs; for a ``sources:`` config the
harmonized columns, keyed by ``record_id``, its primary key). Within one set, two rows
with the same label are a match and two rows with different labels a non-match; rows in
different sets say nothing about each other. A pair label is a set of two rows.

Imported labels live in the run folder, next to the model they train::

    RUN/labels/labels.parquet   every imported row (all columns as text), with its import number
    RUN/labels/labels.json      rows, sets, pairs, imports and the labels hash

Written for people to open in a spreadsheet, a labeling file is created owner-only
(mode 0600) and its cells are escaped against formula injection (:func:`escape_cell`);
reading one removes exactly that escape (:func:`unescape_cell`), so a round trip is lossless.

A data stewards' decision log (``<run>/decisions.jsonl``, :mod:`matcher.matching.decisions`)
imports too (:func:`is_decision_log`): each pair the decisions in force judge (the latest
verdict per pair) becomes a set of two rows, ``<decision_id>:<id_l>~<id_r>``, labeled alike
for a match and differently for a non-match.

Training records the labels hash in ``model/metadata.json`` so a model names the labels
it learned from. Which sets are held out for ``matcher evaluate --labels`` is decided by
:func:`held_out` (a seeded hash of the set id, ``labels.holdout_share`` of the sets).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from matcher.config.transform import TransformConfig
from matcher.harmonize.ingest import csv_fields_unlimited
from matcher.matching.decisions import DECISIONS, DecisionLog, decision_pairs
from matcher.model.comparisons import SOURCE_DATASET_COLUMN
from matcher.runtime.errors import InputDataError
from matcher.runtime.outputs import atomic_directory

log = logging.getLogger(__name__)

LABELING_SET_ID = "labeling_set_id"
LABEL = "label"
IMPORT_NUMBER = "import_number"
MAX_SET_ROWS = 50
"""FindMatches advises sets of 10 to 20 rows; larger sets are accepted with a warning."""

_SHOWN = 10
_BOM = b"\xef\xbb\xbf"
_QUOTE = "'"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NEGATIVE_NUMBER = re.compile(r"-\d+(\.\d+)?")
# C0 controls but tab, LF and CR (CSV's own), DEL, and the C1 controls: never part of a name or address
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def escape_cell(value):
    """A cell safe to open in a spreadsheet (OWASP's CSV-injection advice): text starting with
    ``=``, ``+``, ``-``, ``@``, tab or CR, or with the escape ``'`` itself, gets one leading ``'``.

    A negative number such as ``-12`` or ``-3.5`` stays as it is: a spreadsheet reads it as a
    number, not a formula. Anything but text is returned unchanged.
    """
    if isinstance(value, str) and value.startswith((*_FORMULA_START, _QUOTE)) and not _NEGATIVE_NUMBER.fullmatch(value):
        return _QUOTE + value
    return value


def unescape_cell(value: str) -> str:
    """Undo :func:`escape_cell`: drop one leading ``'`` (a value that starts with ``'`` was written as ``''...``)."""
    return value[1:] if value.startswith(_QUOTE) else value


def _listed(values: list, limit: int = _SHOWN) -> str:
    values = list(values)
    shown = ", ".join(str(v) for v in values[:limit])
    return f"{shown} (and {len(values) - limit} more)" if len(values) > limit else shown


def key_columns(config: TransformConfig) -> list[str]:
    """The columns that name a record in a labeling file: the primary key (``record_id`` for a ``sources:``
    config: its one harmonized input), and ``source_dataset`` for several inputs."""
    return [config.primary_key] if len(config.inputs) == 1 else [SOURCE_DATASET_COLUMN, config.primary_key]


def record_ids(rows: pd.DataFrame, config: TransformConfig) -> pd.Series:
    """Each row's record id as text: the key, or ``<input>:<key>`` (as :func:`matcher.model.comparisons.record_id`)."""
    if len(config.inputs) == 1:
        return rows[config.primary_key].astype(str)
    return rows[SOURCE_DATASET_COLUMN].astype(str) + ":" + rows[config.primary_key].astype(str)


def decode_labeling_file(path: str | Path) -> str:
    """The file's text; a byte-order mark or bytes that are not UTF-8 are errors naming the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputDataError(f"{path}: labeling file not found") from None
    except OSError as err:
        raise InputDataError(f"{path}: cannot read labeling file ({err.strerror})") from None
    if data.startswith(_BOM):
        raise InputDataError(f"{path}: starts with a UTF-8 byte-order mark (BOM); save it as UTF-8 without BOM")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise InputDataError(f"{path}: not UTF-8 (invalid byte 0x{data[err.start]:02x} on line {line}); save it as UTF-8") from None


def _check_control_characters(text: str, path: str | Path) -> None:
    """A control character (NUL and the like) is an error naming its line and column: a CSV
    parser would silently cut the value at a NUL."""
    found = _CONTROL.search(text)
    if found is None:
        return
    line = text.count("\n", 0, found.start()) + 1
    char = found.group()
    reader = csv.reader(io.StringIO(text))
    where = f"line {line} (header)"
    with csv_fields_unlimited():
        header = next(reader)
        if not _CONTROL.search(",".join(header)):
            for number, row in enumerate(reader, start=1):
                position = next((i for i, cell in enumerate(row) if _CONTROL.search(cell)), None)
                if position is not None:
                    name = unescape_cell(header[position]) if position < len(header) else f"#{position + 1}"
                    where = f"line {line} (data row {number}), column {name}"
                    break
    kind = " (NUL)" if char == "\x00" else ""
    raise InputDataError(f"{path}: {where}: control character U+{ord(char):04X}{kind} in a value; remove it")


def read_labeling_file(path: str | Path, config: TransformConfig) -> pd.DataFrame:
    """Read and validate a FindMatches labeling file; every value is text, empty cells are ``""``.

    Cells are stripped of surrounding blanks and unescaped (:func:`unescape_cell`).
    Raises :class:`InputDataError` for a BOM, non-UTF-8 bytes, a control character
    (naming line and column), missing ``labeling_set_id``,
    ``label`` or key columns, rows without a set id, or a record twice in one set. Sets
    over :data:`MAX_SET_ROWS` rows are logged as a warning.
    """
    text = decode_labeling_file(path)
    if not text.strip():
        raise InputDataError(f"{path}: labeling file is empty")
    _check_control_characters(text, path)
    try:
        rows = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, csv.Error) as err:
        raise InputDataError(f"{path}: not a valid CSV ({str(err).splitlines()[0]})") from None
    rows.columns = [unescape_cell(c) for c in rows.columns]
    missing = [c for c in (LABELING_SET_ID, LABEL, *key_columns(config)) if c not in rows.columns]
    if missing:
        raise InputDataError(f"{path}: column(s) {', '.join(missing)} missing (a labeling file starts with "
                             f"labeling_set_id, label, then the source columns; has: {', '.join(rows.columns)})")
    rows = rows.apply(lambda column: column.str.strip().map(unescape_cell))
    no_set = rows.index[rows[LABELING_SET_ID] == ""]
    if len(no_set):
        raise InputDataError(f"{path}: labeling_set_id is empty on data row(s) {_listed([i + 1 for i in no_set])}")
    no_key = rows.index[(rows[key_columns(config)] == "").any(axis=1)]
    if len(no_key):
        raise InputDataError(f"{path}: {config.primary_key} is empty on data row(s) {_listed([i + 1 for i in no_key])}")
    ids = record_ids(rows, config)
    repeated = rows.assign(_id=ids).duplicated([LABELING_SET_ID, "_id"])
    if repeated.any():
        pairs = [f"{s}/{i}" for s, i in zip(rows[LABELING_SET_ID][repeated], ids[repeated])]
        raise InputDataError(f"{path}: record(s) appear twice in the same labeling set (set/key): {_listed(pairs)}")
    sizes = rows.groupby(LABELING_SET_ID).size()
    large = sizes[sizes > MAX_SET_ROWS]
    if len(large):
        log.warning("%s: %d labeling set(s) have more than %d rows (FindMatches advises 10 to 20): %s",
                    path, len(large), MAX_SET_ROWS, _listed(list(large.index)))
    return rows


def labeled_rows(rows: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """The rows that carry a label; a set where no row is labeled is an error naming the sets."""
    has_label = rows[LABEL] != ""
    labeled_sets = set(rows.loc[has_label, LABELING_SET_ID])
    empty = sorted(set(rows[LABELING_SET_ID]) - labeled_sets)
    if empty:
        raise InputDataError(f"{path}: labeling set(s) with no labeled row: {_listed(empty)}; label them or remove them")
    unlabeled = int((~has_label).sum())
    if unlabeled:
        log.warning("%s: %d row(s) without a label are ignored", path, unlabeled)
    return rows[has_label].reset_index(drop=True)


def _order_key(record_id: str) -> tuple:
    """Whole-number ids order as numbers (as match_id does), others as text."""
    return (0, int(record_id), "") if record_id.lstrip("-").isdigit() else (1, 0, record_id)


def pairs_from_sets(rows: pd.DataFrame, config: TransformConfig) -> pd.DataFrame:
    """Every pair of labeled rows within a set: ``id_l < id_r``, ``is_match``, ``labeling_set_id``."""
    out: list[tuple] = []
    ids = record_ids(rows, config).to_numpy() if len(rows) else []
    for set_id, members in rows.groupby(LABELING_SET_ID, sort=True).indices.items():
        for a_pos, a in enumerate(members):
            for b in members[a_pos + 1:]:
                l, r = sorted((ids[a], ids[b]), key=_order_key)
                out.append((l, r, bool(rows[LABEL].iat[a] == rows[LABEL].iat[b]), set_id))
    return pd.DataFrame(out, columns=["id_l", "id_r", "is_match", LABELING_SET_ID]).astype(
        {"id_l": str, "id_r": str, "is_match": bool, LABELING_SET_ID: str}
    )


def conflicting_pairs(pairs: pd.DataFrame) -> list[str]:
    """Pairs labeled both a match and a non-match, as ``id_l~id_r``."""
    verdicts = pairs.groupby(["id_l", "id_r"])["is_match"].nunique()
    return [f"{l}~{r}" for l, r in verdicts[verdicts > 1].index]


def held_out(set_ids: pd.Series, config: TransformConfig) -> pd.Series:
    """True for the sets held out for evaluation.

    A set is held out when ``sha256("<seed>:<labeling_set_id>")``, read as a number in
    [0, 1), is below ``labels.holdout_share``: the split depends only on the seed and
    the set ids, never on the order of the file or on other sets.
    """
    share = config.labels.holdout_share

    def position(set_id: str) -> float:
        digest = hashlib.sha256(f"{config.seed}:{set_id}".encode()).hexdigest()
        return int(digest[:12], 16) / 16**12

    return set_ids.map(lambda s: position(s) < share).astype(bool)


def labels_hash(rows: pd.DataFrame) -> str:
    """A content hash of the stored labels (set ids, labels and every column), order independent."""
    canonical = rows.drop(columns=[IMPORT_NUMBER], errors="ignore")
    canonical = canonical.reindex(sorted(canonical.columns), axis=1)
    canonical = canonical.sort_values(list(canonical.columns), ignore_index=True)
    return hashlib.sha256(canonical.to_csv(index=False).encode()).hexdigest()[:16]


class LabelStore:
    """The labels of one run folder (``RUN/labels``)."""

    def __init__(self, run_root: str | Path):
        self.folder = Path(run_root) / "labels"

    @property
    def rows_path(self) -> Path:
        return self.folder / "labels.parquet"

    @property
    def info_path(self) -> Path:
        return self.folder / "labels.json"

    def exists(self) -> bool:
        return self.rows_path.exists()

    def rows(self) -> pd.DataFrame:
        """The stored rows (text columns plus ``import_number``); empty when nothing was imported."""
        if not self.exists():
            return pd.DataFrame(columns=[LABELING_SET_ID, LABEL, IMPORT_NUMBER])
        return pd.read_parquet(self.rows_path)

    def info(self) -> dict:
        return json.loads(self.info_path.read_text(encoding="utf-8")) if self.info_path.exists() else {}

    def save(self, rows: pd.DataFrame, info: dict) -> None:
        with atomic_directory(self.folder) as tmp:
            rows.to_parquet(tmp / self.rows_path.name, index=False)
            (tmp / self.info_path.name).write_text(json.dumps(info, indent=2), encoding="utf-8")


def _check_keys_in_source(rows: pd.DataFrame, known_ids: set[str], config: TransformConfig, path) -> None:
    ids = record_ids(rows, config)
    unknown = sorted(set(ids) - known_ids, key=_order_key)
    if unknown:
        raise InputDataError(f"{path}: {len(unknown)} labeled record(s) are not in the source (by {config.primary_key}): {_listed(unknown)}")


def source_record_ids(df, config: TransformConfig) -> set[str]:
    """Record ids (as text) of the rows of :func:`matcher.labels.labeling_sets.label_source`."""
    from matcher.model.comparisons import record_id

    return {r[0] for r in df.select(record_id(config).cast("string")).collect()}


def import_labels(config: TransformConfig, run_root: str | Path, path: str | Path, known_ids: set[str], *, replace: bool = False) -> dict:
    """Validate a labeling file and add its labeled rows to the run's label store (or replace them).

    ``known_ids`` are the source's record ids (:func:`source_record_ids`). Conflicting
    labels for the same pair, in this file or against earlier imports, are an error
    naming the pairs.
    """
    rows = labeled_rows(read_labeling_file(path, config), path)
    _check_keys_in_source(rows, known_ids, config, path)
    return store_labels(config, run_root, rows, path, replace=replace)


def is_decision_log(path: str | Path) -> bool:
    """Whether ``path`` names a decision log: a ``*.jsonl`` file, or a run folder holding ``decisions.jsonl``."""
    path = Path(path)
    return path.suffix == ".jsonl" or (path.is_dir() and (path / DECISIONS).is_file())


def decision_label_pairs(path: str | Path) -> tuple[pd.DataFrame, Path]:
    """The pairs the decisions in force of the log at ``path`` judge (``id_l``, ``id_r``, ``is_match``,
    ``decision_id``; :func:`is_decision_log`) and the log's file."""
    file = Path(path) / DECISIONS if Path(path).is_dir() else Path(path)
    if not file.is_file():
        raise InputDataError(f"{file}: decision log not found")
    return decision_pairs(DecisionLog.at(file).read()), file


def store_labels(config: TransformConfig, run_root: str | Path, rows: pd.DataFrame, path: str | Path, *, replace: bool = False) -> dict:
    """Add labeled ``rows`` (labeling_set_id, label, source columns as text; read from ``path``)
    to the run's label store, or replace the stored ones; returns the store's summary.

    Conflicting labels for the same pair, in ``rows`` or against earlier imports, are an
    error naming the pairs, and so are set ids imported before.
    """
    store = LabelStore(run_root)
    earlier = pd.DataFrame(columns=[LABELING_SET_ID, LABEL, IMPORT_NUMBER]) if replace else store.rows()
    info = {} if replace else store.info()
    number = int(info.get("imports", 0)) + 1
    earlier_pairs = pairs_from_sets(earlier, config) if len(earlier) else None
    new_pairs = pairs_from_sets(rows, config)
    reused = sorted(set(rows[LABELING_SET_ID]) & set(earlier[LABELING_SET_ID]))
    if reused:
        raise InputDataError(f"{path}: labeling set id(s) already imported: {_listed(reused)}; use new set ids or --replace")
    everything = pd.concat([p for p in (earlier_pairs, new_pairs) if p is not None], ignore_index=True)
    conflicts = conflicting_pairs(everything)
    if conflicts:
        raise InputDataError(f"{path}: {len(conflicts)} pair(s) labeled both match and non-match "
                             f"(across sets or imports): {_listed(conflicts)}")
    combined = pd.concat([earlier, rows.assign(**{IMPORT_NUMBER: number})], ignore_index=True)
    for column in combined.columns:
        combined[column] = combined[column].astype(int) if column == IMPORT_NUMBER else combined[column].astype(object).where(combined[column].notna(), "").astype(str)
    summary = {
        **_store_counts(combined, config),
        "imports": number,
        "last_import": {"file": str(path), "rows": len(rows), "replace": replace,
                        "at": datetime.now(timezone.utc).isoformat(timespec="seconds")},
    }
    store.save(combined, summary)
    log.info("imported %d labeled rows in %d sets (%d pairs, %d matches in the store)",
             len(rows), rows[LABELING_SET_ID].nunique(), summary["pairs"], summary["match_pairs"])
    return summary


def _store_counts(rows: pd.DataFrame, config: TransformConfig) -> dict:
    """The label store's counts and hash for its ``rows``."""
    pairs = pairs_from_sets(rows, config)
    return {
        "rows": len(rows),
        "sets": int(rows[LABELING_SET_ID].nunique()),
        "pairs": len(pairs),
        "match_pairs": int(pairs["is_match"].sum()),
        "labels_hash": labels_hash(rows),
    }


def erase_labels(config: TransformConfig, run_root: str | Path, target_root: str | Path, erased: set[str]) -> int:
    """Write ``run_root``'s labels to ``target_root`` without the rows of the ``erased`` record ids
    (text); returns how many rows went. A set left with one row says nothing any more."""
    store = LabelStore(run_root)
    if not store.exists():
        return 0
    rows = store.rows()
    gone = record_ids(rows, config).isin(erased)
    kept = rows[~gone].reset_index(drop=True)
    info = store.info()
    info.update(_store_counts(kept, config), erased_rows=int(info.get("erased_rows", 0)) + int(gone.sum()))
    LabelStore(target_root).save(kept, info)
    return int(gone.sum())


def export_labels(run_root: str | Path, output: str | Path) -> dict:
    """Write every stored label back out as one FindMatches CSV (UTF-8, no BOM)."""
    store = LabelStore(run_root)
    if not store.exists():
        raise InputDataError(f"{store.folder}: no labels imported into this run folder; run 'matcher import-labels' first")
    rows = store.rows().drop(columns=[IMPORT_NUMBER])
    write_labeling_file(rows, output)
    return {"rows": len(rows), "sets": int(rows[LABELING_SET_ID].nunique()), "output": str(output)}


def write_labeling_file(rows: pd.DataFrame, output: str | Path) -> None:
    """Write rows as a FindMatches labeling file: ``labeling_set_id``, ``label`` first, UTF-8 without BOM, CRLF.

    Cells and column names are escaped (:func:`escape_cell`); the file is owner-only
    (mode 0600: it holds personal data) and replaced atomically.
    """
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    ordered = rows[[LABELING_SET_ID, LABEL, *[c for c in rows.columns if c not in (LABELING_SET_ID, LABEL)]]]
    escaped = ordered.apply(lambda column: column.map(escape_cell))
    escaped.columns = [escape_cell(c) for c in ordered.columns]
    tmp = output.with_name(f".{output.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when an interrupted write left the temporary file with other permissions
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
        # CRLF rows (RFC 4180): the csv writer then quotes a cell holding a lone CR, which it would not with LF
        escaped.to_csv(out, index=False, lineterminator="\r\n")
    tmp.replace(output)


def training_pairs(config: TransformConfig, run_root: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """The stored labels as pairs split into (training, held out), and the labels hash (None without labels)."""
    store = LabelStore(run_root)
    rows = store.rows()
    if rows.empty:
        empty = pairs_from_sets(rows, config)
        return empty, empty, None
    pairs = pairs_from_sets(rows, config)
    out = held_out(pairs[LABELING_SET_ID], config)
    return pairs[~out].reset_index(drop=True), pairs[out].reset_index(drop=True), labels_hash(rows)


def sets_from_pair_labels(
    pairs: pd.DataFrame, source: pd.DataFrame, config: TransformConfig, set_ids: list[str] | None = None,
) -> pd.DataFrame:
    """Clerical pair labels as a FindMatches labeling file: one set of two rows per labeled pair.

    ``pairs`` has ``id_l``, ``id_r`` (record ids: primary keys, or ``<input>:<key>`` with
    several inputs) and ``is_match``; ``source`` holds the source rows (text, with
    ``source_dataset`` for several inputs). A match gets label ``a`` twice, a non-match
    ``a`` and ``b``. Pair ``i`` becomes set ``set_ids[i]`` (default ``pair-<i>``).
    """
    text = source.astype(str)
    by_key = text.set_index(record_ids(text, config).to_numpy(), drop=False)
    unknown = sorted((set(pairs["id_l"].astype(str)) | set(pairs["id_r"].astype(str))) - set(by_key.index), key=_order_key)
    if unknown:
        raise InputDataError(f"pair labels name {len(unknown)} key(s) not in the source: {_listed(unknown)}")
    left = by_key.loc[pairs["id_l"].astype(str)].reset_index(drop=True)
    right = by_key.loc[pairs["id_r"].astype(str)].reset_index(drop=True)
    set_ids = set_ids if set_ids is not None else [f"pair-{i}" for i in range(len(pairs))]
    left.insert(0, LABEL, "a")
    right.insert(0, LABEL, ["a" if m else "b" for m in pairs["is_match"].astype(bool)])
    left.insert(0, LABELING_SET_ID, set_ids)
    right.insert(0, LABELING_SET_ID, set_ids)
    both = pd.concat([left.assign(_side=0, _n=range(len(left))), right.assign(_side=1, _n=range(len(right)))], ignore_index=True)
    return both.sort_values(["_n", "_side"], kind="stable").drop(columns=["_n", "_side"]).reset_index(drop=True)
