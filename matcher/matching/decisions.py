"""Data stewards' decisions: an append-only log in the run folder that every run enforces.

``<run>/decisions.jsonl`` holds one JSON object per line, written by the review page
(``matcher review``, :mod:`matcher.review`) and never rewritten::

    {"decision_id": "d000003", "action": "split", "match_id": "a:1", "records": ["a:1", "b:7"],
     "moved": ["c:2"], "new_match_id": "c:2", "who": "ana", "when": "2026-12-05T10:02:11Z", "why": "..."}

Actions and what they enforce (record ids as the run's ``record_id``, as text):

* ``confirm``: the entity's ``records`` are one customer: must-links among them.
* ``split``: ``moved`` leave the entity: cannot-links between ``moved`` and the kept
  ``records``, must-links among ``moved`` (they become one entity, ``new_match_id``);
  the larger, kept part keeps ``match_id``.
* ``merge``: two entities become one: must-links among all ``records``; the surviving
  ``match_id`` is the older of the two (see :mod:`matcher.review.state`), the other is
  ``retired_match_id``.
* ``match`` / ``not_match``: one pair of ``records``: a must-link / a cannot-link.
* ``undo``: ``undoes`` names an earlier decision, which then no longer counts.

Per pair of records the latest decision wins, so a merge after a split re-joins the
pieces. :func:`decision_links` gives the must- and cannot-links,
:func:`decided_ids` the ids the decisions gave, and :func:`name_clusters` applies those
ids to a clustering. :func:`contradiction` tells whether a set of decisions holds together.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from matcher.matching.clustering import find_root
from matcher.runtime.errors import InputDataError

log = logging.getLogger(__name__)

DECISIONS = "decisions.jsonl"
Action = Literal["confirm", "split", "merge", "match", "not_match", "undo"]
ACTIONS: tuple[str, ...] = ("confirm", "split", "merge", "match", "not_match", "undo")


@dataclass(frozen=True)
class Decision:
    """One steward's decision (see the module docstring for what each action means)."""

    decision_id: str
    action: Action
    who: str
    when: str
    why: str = ""
    match_id: str | None = None
    records: tuple[str, ...] = ()
    moved: tuple[str, ...] = ()
    new_match_id: str | None = None
    retired_match_id: str | None = None
    undoes: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if v not in (None, (), "")}

    @classmethod
    def from_json(cls, value: dict[str, Any], where: str) -> Decision:
        known = {k: v for k, v in value.items() if k in cls.__dataclass_fields__}
        unknown = sorted(set(value) - set(known))
        if unknown or known.get("action") not in ACTIONS or not known.get("decision_id"):
            raise InputDataError(f"{where}: not a decision (action must be one of {', '.join(ACTIONS)}; unknown keys: {unknown})")
        for key in ("records", "moved"):
            known[key] = tuple(str(r) for r in known.get(key, ()))
        for key in ("match_id", "new_match_id", "retired_match_id"):
            if known.get(key) is not None:
                known[key] = str(known[key])
        return cls(**known)


def now() -> str:
    """The current UTC time as the log writes it."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class DecisionLog:
    """The append-only decision log of one run folder (``<root>/decisions.jsonl``)."""

    def __init__(self, root: str | Path):
        self.path = Path(root) / DECISIONS

    @classmethod
    def at(cls, path: str | Path) -> DecisionLog:
        """The log in the file ``path``, whatever its name (a copy to import as labels)."""
        log = cls(Path(path).parent)
        log.path = Path(path)
        return log

    def read(self) -> list[Decision]:
        """Every decision in the order written; a malformed line is an error naming its line number."""
        if not self.path.exists():
            return []
        decisions = []
        with self.path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                where = f"{self.path}, line {number}"
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as err:
                    raise InputDataError(f"{where}: not JSON ({err.msg})") from None
                decisions.append(Decision.from_json(value, where))
        return decisions

    @contextmanager
    def locked(self) -> Iterator[list[Decision]]:
        """Hold an exclusive lock on the log (other processes wait) and yield its decisions."""
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(DECISIONS + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield self.read()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def append(self, decision: Decision) -> None:
        """Add ``decision`` durably (written, flushed and fsynced) at the end of the log; call under :meth:`locked`."""
        line = json.dumps(decision.as_json(), ensure_ascii=False, separators=(",", ":")) + "\n"
        with self.path.open("a", encoding="utf-8") as out:
            out.write(line)
            out.flush()
            os.fsync(out.fileno())

    def copy_to(self, root: str | Path) -> None:
        """Carry the log into another run folder (an incremental run's output), byte for byte."""
        if self.path.exists():
            target = Path(root) / DECISIONS
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.path.read_bytes())


def next_id(decisions: list[Decision]) -> str:
    return f"d{len(decisions) + 1:06d}"


def in_force(decisions: Iterable[Decision]) -> list[Decision]:
    """The decisions that count: not undos, and not undone."""
    decisions = list(decisions)
    undone = {d.undoes for d in decisions if d.action == "undo"}
    return [d for d in decisions if d.action != "undo" and d.decision_id not in undone]


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def _verdicts(decision: Decision) -> Iterator[tuple[tuple[str, str], bool]]:
    """(pair, is_match) for every record pair the decision speaks about."""
    if decision.action in ("confirm", "merge"):
        for a, b in combinations(sorted(set(decision.records)), 2):
            yield (a, b), True
    elif decision.action == "split":
        moved = sorted(set(decision.moved))
        for a, b in combinations(moved, 2):
            yield (a, b), True
        for a in moved:
            for b in sorted(set(decision.records) - set(moved)):
                yield _pair(a, b), False
    elif decision.action in ("match", "not_match") and len(decision.records) == 2:
        yield _pair(*decision.records), decision.action == "match"


def decision_pairs(decisions: Iterable[Decision]) -> pd.DataFrame:
    """``id_l``, ``id_r``, ``is_match``, ``decision_id``: every pair the decisions in force judge, the latest verdict per pair."""
    latest: dict[tuple[str, str], tuple[bool, str]] = {}
    for decision in in_force(decisions):
        for pair, is_match in _verdicts(decision):
            latest[pair] = (is_match, decision.decision_id)
    rows = [(a, b, is_match, d) for (a, b), (is_match, d) in sorted(latest.items())]
    return pd.DataFrame(rows, columns=["id_l", "id_r", "is_match", "decision_id"]).astype({"is_match": bool})


def decision_links(decisions: Iterable[Decision]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Must-links and cannot-links (``id_l``, ``id_r`` as text) that the decisions in force enforce."""
    pairs = decision_pairs(decisions)
    must = pairs.loc[pairs["is_match"], ["id_l", "id_r"]].reset_index(drop=True)
    cannot = pairs.loc[~pairs["is_match"], ["id_l", "id_r"]].reset_index(drop=True)
    return must, cannot


def contradiction(decisions: Iterable[Decision]) -> tuple[str, str] | None:
    """A cannot-linked pair that the must-links join anyway (through other records), or None when the decisions hold together."""
    must, cannot = decision_links(decisions)
    parent = {x: x for x in pd.concat([must["id_l"], must["id_r"]])}
    for a, b in zip(must["id_l"], must["id_r"]):
        parent[find_root(parent, a)] = find_root(parent, b)
    for a, b in zip(cannot["id_l"], cannot["id_r"]):
        if a in parent and b in parent and find_root(parent, a) == find_root(parent, b):
            return a, b
    return None


def decided_ids(decisions: Iterable[Decision]) -> dict[str, str]:
    """The match_id the latest decision in force gave each record it names."""
    ids: dict[str, str] = {}
    for decision in in_force(decisions):
        if decision.action == "split":
            ids.update({r: decision.match_id for r in decision.records if r not in set(decision.moved)})
            ids.update({r: decision.new_match_id for r in decision.moved})
        elif decision.action in ("confirm", "merge"):
            ids.update({r: decision.match_id for r in decision.records})
    return {r: i for r, i in ids.items() if i is not None}


def claimed_ids(members: pd.DataFrame, cluster: str, decided: dict[str, Any]) -> dict[Any, Any]:
    """Cluster (column ``cluster`` of ``members``, which has ``record_id``) → the decided id it takes.

    A cluster takes the decided id most of its decided records carry (tie: the smallest id);
    an id claimed by several clusters goes to the one with most such records (tie: smallest
    cluster name). Clusters without a decided record are not listed.
    """
    claims = members.assign(claim=members["record_id"].astype(str).map(decided)).dropna(subset=["claim"])
    if claims.empty:
        return {}
    votes = claims.groupby([cluster, "claim"]).size().rename("n").reset_index()
    votes = votes.sort_values([cluster, "n", "claim"], ascending=[True, False, True]).drop_duplicates(cluster)
    votes = votes.sort_values(["claim", "n", cluster], ascending=[True, False, True]).drop_duplicates("claim")
    return dict(zip(votes[cluster], votes["claim"]))


def name_clusters(members: pd.DataFrame, decided: dict[str, Any], unused_id) -> pd.DataFrame:
    """``members`` (``record_id``, ``match_id``) with each cluster that holds decided records named as the decisions named it.

    A cluster takes the decided id most of its decided records carry (tie: the smallest id);
    an id claimed by several clusters goes to the one with most such records (tie: smallest
    cluster name), the others keep their own name unless a decided id took it, when
    ``unused_id(smallest_record, used)`` names them. ``members`` must hold every decided
    record that is in the run (singletons included), with ids of the run's type.
    """
    if not decided or members.empty:
        return members
    as_text = members["record_id"].astype(str)
    claimed = claimed_ids(members, "match_id", decided)
    if not claimed:
        return members
    typed = dict(zip(as_text, members["record_id"]))  # a decided id that is a record id keeps the run's id type
    chosen = {cluster: typed.get(claim, claim) for cluster, claim in claimed.items()}
    used = set(chosen.values())
    renamed = dict(chosen)
    for cluster in sorted(set(members["match_id"]) - set(chosen)):
        if cluster in used:
            smallest = members.loc[members["match_id"] == cluster, "record_id"].min()
            renamed[cluster] = unused_id(smallest, used | set(members["match_id"]))
            used.add(renamed[cluster])
    out = members.copy()
    out["match_id"] = out["match_id"].map(lambda c: renamed.get(c, c))
    return out


def decided_records(decisions: Iterable[Decision]) -> set[str]:
    """Every record a decision in force names."""
    named: set[str] = set()
    for decision in in_force(decisions):
        named.update(decision.records)
        named.update(decision.moved)
    return named


def ids_named(decisions: Iterable[Decision]) -> set[str]:
    """Every record id a decision in force names, or gives as a match_id: the ids a run looks up."""
    decisions = list(decisions)
    return decided_records(decisions) | set(decided_ids(decisions).values())


def counts(decisions: Iterable[Decision]) -> dict[str, int]:
    """Decisions in force by action, for summaries."""
    return dict(Counter(d.action for d in in_force(decisions)))
