"""What every config section shares: strict parsing and the column names matcher writes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RECORD_ID = "record_id"
"""The column naming a record: the primary key, or ``<source>:<key>`` once sources are harmonized."""

RESERVED_COLUMNS = ("match_id", "match_confidence_score", "source_dataset")
"""Columns matcher adds to every matched row; an input may not use these names."""

SOURCE_DATASET_COLUMN = "source_dataset"
"""The column naming each row's input (the synthetic ``harmonized`` one for a ``sources:`` config)."""


class StrictModel(BaseModel):
    """A config section: unknown keys are errors and a parsed section is immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TableSpec(StrictModel):
    """A table to read: its name, where it is, its format and the reader's options."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    path: str
    format: Literal["csv", "parquet", "json"] = "parquet"
    options: dict[str, str] = Field(default_factory=dict)
