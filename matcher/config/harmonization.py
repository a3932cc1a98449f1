"""Configuration of the multi-source stages: sources, standardize, quality, golden.

These sections are optional parts of :class:`~matcher.config.transform.TransformConfig`. A config
with ``sources:`` is harmonized first: every source's columns are mapped onto one
canonical customer schema (:data:`CANONICAL_FIELDS`), standardized, and checked by the
quality gate; matching then runs on the rows that passed, keyed by the global record id
``<source>:<primary key>``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from matcher.config.base import RECORD_ID, RESERVED_COLUMNS, StrictModel, TableSpec

CANONICAL_FIELDS: dict[str, str] = {
    "first_name": "name",
    "middle_name": "name",
    "last_name": "name",
    "dob": "date",
    "email": "email",
    "phone": "phone",
    "house_number": "text",
    "street": "text",
    "unit": "text",
    "postcode": "postcode",
    "city": "text",
    "state": "code",
    "country": "code",
    "national_id": "digits",
    "updated_at": "timestamp",
}
"""The canonical customer schema: field name → how it is standardized (:mod:`matcher.harmonize.standardize`)."""

ADDRESS_PARTS = ("postcode", "city", "street", "house_number", "unit", "state")
"""The canonical parts of an address, the most telling first: household members and neighbours
share them all, so comparing several counts one agreement several times."""

DERIVED_FIELDS = ("first_name_canonical",)
"""Columns standardization adds beside the canonical ones (``first_name`` with nicknames resolved)."""

SOURCE_SYSTEM = "source_system"
HARMONIZED_INPUT = "harmonized"
"""The name of the single (synthetic) input the match stage sees for a ``sources:`` config."""

SURVIVORSHIP_RULES = ("source_priority", "most_recent", "most_frequent", "most_complete")
Survivorship = Literal["source_priority", "most_recent", "most_frequent", "most_complete"]
QUALITY_RULES = ("primary_key", "encoding", "required", "require_any", "parseable", "allowed_values")


class SourceSpec(TableSpec):
    """One source system: where its table is, its key, and how its columns map onto the canonical schema.

    ``columns`` maps a canonical field (or a pass-through name of your choice) to the
    source's column: ``{first_name: fname, dob: birth_date, loyalty_tier: tier}``.
    Canonical fields are standardized (the raw value is kept as ``raw_<field>``);
    other names are passed through as strings.
    """

    primary_key: str
    columns: dict[str, str] = Field(min_length=1)
    date_formats: list[str] | None = None
    allow_empty: bool = False

    @field_validator("columns")
    @classmethod
    def _no_reserved_targets(cls, columns: dict[str, str]) -> dict[str, str]:
        reserved = {SOURCE_SYSTEM, RECORD_ID, *RESERVED_COLUMNS, *DERIVED_FIELDS}
        bad = sorted(reserved.intersection(columns) | {c for c in columns if c.startswith("raw_")})
        if bad:
            raise ValueError(f"column name(s) {', '.join(bad)} are reserved for matcher's outputs; map to another name")
        return columns


class StandardizeSpec(StrictModel):
    """How raw values become comparable (see :mod:`matcher.harmonize.standardize`)."""

    default_region: str = Field(default="US", pattern=r"^[A-Z]{2}$")
    date_formats: list[str] = Field(
        default_factory=lambda: ["%Y-%m-%d", "%Y%m%d", "%m/%d/%Y", "%d.%m.%Y"], min_length=1
    )
    """Tried in order (Python ``strptime`` codes); the first that parses the whole value wins."""
    timestamp_formats: list[str] = Field(
        default_factory=lambda: ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"], min_length=1
    )
    email_provider_rules: bool = True
    nicknames: bool = True
    placeholder_names: bool = False
    """First and last names that stand for no name (``mom``, ``baby``, ``unknown``, a lone
    initial: :data:`matcher.harmonize.standardize.PLACEHOLDER_NAMES`) become null."""
    date_ocr_repair: bool = False
    """A date that no format reads is read again with look-alike characters as digits
    (``O`` → 0, ``|`` → 1, ``S`` → 5, ...): scanned or OCR-ed forms."""


class QualitySpec(StrictModel):
    """The quality gate: a row failing any rule goes to the quarantine table with the rule and reason.

    Always on: a null or repeated primary key (``primary_key``) and undecodable text
    (``encoding``: a U+FFFD replacement character in a mapped column).
    """

    required: list[str] = Field(default_factory=list)
    require_any: list[list[str]] = Field(default_factory=list)
    parseable: list[str] = Field(default_factory=list)
    allowed_values: dict[str, list[str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_fields(self) -> "QualitySpec":
        unparseable = [f for f in self.parseable if CANONICAL_FIELDS.get(f) not in ("date", "email", "phone", "timestamp")]
        if unparseable:
            raise ValueError(
                f"parseable: {', '.join(unparseable)} (only date, email, phone and timestamp fields are parsed: "
                f"{', '.join(f for f, k in CANONICAL_FIELDS.items() if k in ('date', 'email', 'phone', 'timestamp'))})"
            )
        return self


class GoldenSpec(StrictModel):
    """Survivorship: which value of a cluster becomes the customer's value, per field.

    ``rules`` overrides ``default_rule`` for single fields. Ties always fall to
    ``source_priority`` order, then to the smallest record id.
    """

    fields: list[str] | None = None
    default_rule: Survivorship = "most_complete"
    rules: dict[str, Survivorship] = Field(default_factory=dict)
    source_priority: list[str] = Field(default_factory=list)
    timestamp_column: str = "updated_at"
