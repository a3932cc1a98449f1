"""An interactive terminal labeler for FindMatches labeling files (``matcher label``).

For each labeling set it asks, record by record, whether the record is the same entity
as a group already formed in the set, showing the two records side by side with a
per-column similarity (difflib's ratio of the trimmed, lower-cased values, in [0, 1]):

* ``m`` match: the record joins the group shown;
* ``n`` non-match: the next group is shown; after the last one the record starts a new
  group (the first record of a set starts one without asking);
* ``s`` skip: leave the record unlabeled for now;
* ``u`` undo: take back the last answer;
* ``q`` quit (end of input too): stop; everything answered is already saved.

Every answer that sets a label rewrites the same CSV (atomically), so labeling resumes
where it stopped: rows with a label are never asked again. Labels are ``e1``, ``e2``, ...
within a set. Answers are read line by line, so the labeler can be driven through stdin.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.table import Table

from matcher.config.transform import TransformConfig
from matcher.labels.files import LABEL, LABELING_SET_ID, read_labeling_file, write_labeling_file

KEYS = "[m]atch  [n]on-match  [s]kip  [u]ndo  [q]uit"


def similarity(a: str, b: str) -> float | None:
    """Similarity of two values in [0, 1]; None when either is empty."""
    a, b = a.strip().lower(), b.strip().lower()
    if not a or not b:
        return None
    return SequenceMatcher(None, a, b).ratio()


@dataclass
class _Step:
    row: int
    previous_label: str
    group: int
    skipped: bool = False
    automatic: bool = False


class Labeler:
    """The labeling state of one file: its rows, the answers given, and where the next question is."""

    def __init__(self, config: TransformConfig, path: str | Path, console: Console):
        self.path = Path(path)
        self.rows = read_labeling_file(self.path, config)
        self.console = console
        shown = [c for c in config.column_names if c in self.rows.columns]
        others = [c for c in self.rows.columns if c not in (LABELING_SET_ID, LABEL, *shown)]
        self.columns = [*[c for c in (config.primary_key,) if c in others], *shown,
                        *[c for c in others if c != config.primary_key]]
        self.skipped: set[int] = set()
        self.history: list[_Step] = []
        self.group = 0
        self.answered = 0

    # --- state -------------------------------------------------------------------------
    def pending(self) -> int | None:
        """The next row to ask about: the first unlabeled, unskipped row in file order."""
        for i, label in enumerate(self.rows[LABEL]):
            if label == "" and i not in self.skipped:
                return i
        return None

    def groups(self, row: int) -> list[str]:
        """The labels already used in the row's set, in order of first appearance."""
        same_set = self.rows[self.rows[LABELING_SET_ID] == self.rows.at[row, LABELING_SET_ID]]
        return list(dict.fromkeys(label for label in same_set[LABEL] if label))

    def representative(self, row: int, label: str) -> int:
        same = self.rows[(self.rows[LABELING_SET_ID] == self.rows.at[row, LABELING_SET_ID]) & (self.rows[LABEL] == label)]
        return int(same.index[0])

    def _new_label(self, row: int) -> str:
        used = set(self.groups(row))
        k = 1
        while f"e{k}" in used:
            k += 1
        return f"e{k}"

    def _assign(self, row: int, label: str, *, automatic: bool = False) -> None:
        self.history.append(_Step(row, self.rows.at[row, LABEL], self.group, automatic=automatic))
        self.rows.at[row, LABEL] = label
        self.group = 0
        write_labeling_file(self.rows, self.path)

    # --- answers -----------------------------------------------------------------------
    def answer(self, key: str) -> bool:
        """Apply one answer to the current question; False when labeling should stop."""
        row = self.pending()
        if key == "q" or row is None:
            return False
        groups = self.groups(row)
        if key == "m":
            self._assign(row, groups[self.group])
        elif key == "n":
            if self.group + 1 < len(groups):
                self.history.append(_Step(row, "", self.group))
                self.group += 1
            else:
                self._assign(row, self._new_label(row))
        elif key == "s":
            self.history.append(_Step(row, "", self.group, skipped=True))
            self.skipped.add(row)
            self.group = 0
        elif key == "u":
            self.undo()
            return True
        else:
            self.console.print(f"unknown key {key!r}: {KEYS}", markup=False)
            return True
        self.answered += 1
        return True

    def undo(self) -> None:
        """Take back the last answer (and the automatic labels given after it)."""
        while self.history:
            step = self.history.pop()
            if step.skipped:
                self.skipped.discard(step.row)
            elif self.rows.at[step.row, LABEL] != step.previous_label:
                self.rows.at[step.row, LABEL] = step.previous_label
                write_labeling_file(self.rows, self.path)
            self.group = step.group
            if not step.automatic:
                self.answered = max(0, self.answered - 1)
                return
        self.console.print("nothing to undo")

    def start_groups(self) -> None:
        """A record that is the first of its set to be labeled starts group e1 without a question."""
        row = self.pending()
        while row is not None and not self.groups(row):
            self._assign(row, self._new_label(row), automatic=True)
            row = self.pending()

    # --- display -----------------------------------------------------------------------
    def show(self) -> None:
        row = self.pending()
        groups = self.groups(row)
        other = self.representative(row, groups[self.group])
        set_id = self.rows.at[row, LABELING_SET_ID]
        in_set = self.rows[self.rows[LABELING_SET_ID] == set_id]
        done = int((in_set[LABEL] != "").sum())
        table = Table(title=f"set {set_id}: {done}/{len(in_set)} labeled; is the record the same entity as group "
                            f"{groups[self.group]} ({self.group + 1}/{len(groups)})?")
        table.add_column("column")
        table.add_column(f"record (line {row + 2})")
        table.add_column(f"group {groups[self.group]} (line {other + 2})")
        table.add_column("similarity", justify="right")
        for column in self.columns:
            a, b = str(self.rows.at[row, column]), str(self.rows.at[other, column])
            sim = similarity(a, b)
            table.add_row(column, a, b, "" if sim is None else f"{sim:.2f}")
        self.console.print(table)
        self.console.print(KEYS, markup=False)


def label_file(config: TransformConfig, path: str | Path, *, answers: TextIO | None = None, console: Console | None = None) -> str:
    """Label ``path`` interactively, reading one answer per line from ``answers`` (stdin by default)."""
    answers = answers if answers is not None else sys.stdin
    console = console or Console()
    labeler = Labeler(config, path, console)
    while True:
        labeler.start_groups()
        if labeler.pending() is None:
            break
        labeler.show()
        line = answers.readline()
        if not line:
            break
        if not labeler.answer(line.strip().lower()[:1]):
            break
    rows = labeler.rows
    left = int((rows[LABEL] == "").sum())
    return f"labeled {len(rows) - left} of {len(rows)} rows in {path} ({left} left); run 'matcher import-labels' when done"
