"""Which ``standardize`` options the sources call for (``matcher init``): decided from the sampled values.

* ``placeholder_names``: on when at least :data:`MIN_PLACEHOLDER_SHARE` of the sampled first and
  last names stand for no name (``unknown``, ``mom``, ``child f``:
  :data:`~matcher.harmonize.rules.PLACEHOLDER_NAMES`). A lone initial does not count towards
  it (an initial may be all a form asked for). A few words of the list are also real names
  (``nina``): in ordinary data they stay far below the share, on census returns the
  placeholders are dozens in every thousand names.
  Left off, two people both written ``child f`` agree on their first name and one person
  written ``child f`` once differs on it.
* ``date_ocr_repair``: on when at least :data:`MIN_REPAIRED_SHARE` of a date field's sampled
  values are read by no format but are read with look-alike characters as digits
  (``O1/|5/199S``). The repair touches only values no format reads.

Each decision comes with its reason, in counts and shares (never a value).
"""

from __future__ import annotations

from typing import Protocol, Sequence

import pandas as pd

from matcher.config.harmonization import CANONICAL_FIELDS, StandardizeSpec
from matcher.harmonize.rules import PLACEHOLDER_NAMES, clean_names, parse_dates
from matcher.profiling.profile import FileProfile

MIN_PLACEHOLDER_SHARE = 0.01
"""Least share of the sampled first and last names that are placeholders for ``placeholder_names``."""
MIN_REPAIRED_SHARE = 0.001
"""Least share of a date field's sampled values that only the OCR repair reads for ``date_ocr_repair``."""
_NAME_FIELDS = ("first_name", "last_name")


class Mapped(Protocol):
    """A source as :mod:`matcher.profiling.starting_config` decided it: profiled columns mapped onto fields."""

    @property
    def mapping(self) -> dict[str, str]: ...

    @property
    def date_formats(self) -> tuple[str, ...]: ...

    @property
    def profile(self) -> FileProfile: ...


def _placeholder_names(sources: Sequence[Mapped]) -> str | None:
    sampled = [clean_names(s.profile.column(s.mapping[f]).sample) for s in sources for f in _NAME_FIELDS if f in s.mapping]
    if not sampled:
        return None
    names = pd.concat(sampled, ignore_index=True).dropna()
    placeholders = int((names.isin(PLACEHOLDER_NAMES) & (names.str.len() > 1)).sum())
    if not len(names) or placeholders < MIN_PLACEHOLDER_SHARE * len(names):
        return None
    return (f"{placeholders} of {len(names)} sampled first and last names ({placeholders / len(names):.1%}) "
            f"stand for no name (a household role or a refusal written for a name): read as missing")


def _date_ocr_repair(sources: Sequence[Mapped]) -> str | None:
    repaired = read = 0
    for s in sources:
        formats = list(s.date_formats) or StandardizeSpec().date_formats
        for f, column in s.mapping.items():
            if CANONICAL_FIELDS.get(f) != "date":
                continue
            values = s.profile.column(column).sample
            plain = parse_dates(values, formats).notna()
            repaired += int((parse_dates(values, formats, ocr_repair=True).notna() & ~plain).sum())
            read += len(values)
    if not read or repaired < max(MIN_REPAIRED_SHARE * read, 2):
        return None
    return (f"{repaired} of {read} sampled dates ({repaired / read:.1%}) are read only with look-alike "
            f"characters as digits (O for 0, | for 1): repaired")


def standardize_options(sources: Sequence[Mapped]) -> dict[str, str]:
    """The ``standardize`` options to turn on for ``sources``, each with its reason."""
    decided = {"placeholder_names": _placeholder_names(sources), "date_ocr_repair": _date_ocr_repair(sources)}
    return {option: why for option, why in decided.items() if why is not None}
