"""Records added by the service, appended durably to the run folder as Parquet parts.

``matches/`` and ``pairs/`` are Parquet folders. An added record becomes one more part of
each, with the run's own schema, written durably before the service answers
(:func:`~matcher.runtime.parquet_parts.append_durable_part`): a part is either absent or
whole. The next ``matcher match-incremental`` (or ``load-graph``) reads them like every other
part, so the records are already matched, with their ``match_id``. ``matches/`` is written
before ``pairs/``; when the pairs cannot be written the records' part is removed again. Only a
crash between the two leaves a matched record without its stored links, which the next full
run finds again.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds

from matcher.runtime.errors import MatcherError
from matcher.runtime.parquet_parts import append_durable_part, as_table

PART_PREFIX = "part-serve-"


class RunJournal:
    """Appends matched records, and their scored pairs, to a run folder's ``matches/`` and ``pairs/``."""

    def __init__(self, matches: ds.Dataset, pairs: ds.Dataset, matches_folder: Path, pairs_folder: Path) -> None:
        for folder in (matches_folder, pairs_folder):
            if not os.access(folder, os.W_OK):
                raise MatcherError(f"{folder}: not writable; the service appends the records it adds there")
        self._matches, self._pairs = matches, pairs
        self._folders = (Path(matches_folder), Path(pairs_folder))

    def append(self, records: pd.DataFrame, pairs: pd.DataFrame) -> list[Path]:
        """Write ``records`` (matched rows) and, when there are any, their ``pairs``; returns the parts written."""
        matches_folder, pairs_folder = self._folders
        records_table = as_table(records, self._matches.schema, str(matches_folder))
        pairs_table = as_table(pairs, self._pairs.schema, str(pairs_folder)) if len(pairs) else None
        written = [append_durable_part(records_table, matches_folder, self._matches, PART_PREFIX)]
        try:
            if pairs_table is not None:
                written.append(append_durable_part(pairs_table, pairs_folder, self._pairs, PART_PREFIX))
        except BaseException:
            written[0].unlink(missing_ok=True)  # all or nothing: records without their pairs are not kept
            raise
        return written
