"""What every config section shares: strict parsing and the column names matcher writes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

RECORD_ID = "record_id"
"""The column naming a record: the primary key, or ``<source>:<key>`` once sources are harmonized."""

RESERVED_COLUMNS = ("match_id", "match_confidence_score", "source_dataset")
"""Columns matcher adds to every matched row; an input may not use these names."""


class StrictModel(BaseModel):
    """A config section: unknown keys are errors and a parsed section is immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
