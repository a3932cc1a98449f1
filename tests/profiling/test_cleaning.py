"""``matcher init`` turns on the ``standardize`` options the sampled values call for, and says why."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from matcher.profiling.cleaning import MIN_PLACEHOLDER_SHARE
from matcher.profiling.starting_config import starting_config

GIVEN = ["Anna", "Brian", "Carla", "Dmitri", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas"]
FAMILY = ["Smith", "Okafor", "Novak", "Garcia", "Lindqvist", "Tanaka", "Moreau", "Kowalski"]


def people(rows: int, *, placeholders: int = 0, initials: int = 0, damaged_dates: int = 0) -> pd.DataFrame:
    """``rows`` people; the first ``placeholders`` written with a role for a first name and 'unknown' for a
    surname, the next ``initials`` with a lone initial, the first ``damaged_dates`` dates read by OCR."""
    first = [GIVEN[i % len(GIVEN)] for i in range(rows)]
    last = [FAMILY[i % len(FAMILY)] for i in range(rows)]
    dob = [f"{1 + i % 12:02d}/{1 + i % 28:02d}/{1950 + i % 50}" for i in range(rows)]
    for i in range(placeholders):
        first[i], last[i] = ("Child F", "Unknown") if i % 2 else ("Son of", "Dont Know")
    for i in range(placeholders, placeholders + initials):
        first[i] = "J."
    for i in range(damaged_dates):
        dob[i] = dob[i].replace("0", "O").replace("1", "|").replace("5", "S")
    return pd.DataFrame({"id": range(rows), "first_name": first, "last_name": last, "birth_date": dob})


def test_placeholder_names_and_ocr_damaged_dates_turn_their_repairs_on_with_counts_not_values(tmp_path):
    frame = people(400, placeholders=12, damaged_dates=6)
    frame.to_csv(tmp_path / "census.csv", index=False)
    result = starting_config([tmp_path / "census.csv"], output=tmp_path / "c.yaml")
    assert result.config["standardize"] == {"placeholder_names": True, "date_ocr_repair": True}
    text = result.explanation()
    assert "standardize.placeholder_names: on: 24 of 800 sampled first and last names (3.0%) stand for no name" in text
    assert re.search(r"standardize.date_ocr_repair: on: 6 of 400 sampled dates \(1.5%\) are read only with", text)
    written = {*frame.first_name[:12], *frame.last_name[:12], *frame.birth_date[:6]}
    assert [v for v in written if v.lower() in text.lower()] == []


@pytest.mark.parametrize("rows, placeholders, initials, damaged_dates", [
    (400, 0, 40, 0),  # lone initials: all a form may have asked for
    (1000, int(MIN_PLACEHOLDER_SHARE * 2000) // 2 - 1, 0, 1),  # placeholders just under the share; one damaged date
    (400, 0, 0, 0),
])
def test_initials_a_few_placeholders_or_one_damaged_date_leave_the_options_off(tmp_path, rows, placeholders, initials, damaged_dates):
    people(rows, placeholders=placeholders, initials=initials, damaged_dates=damaged_dates).to_csv(tmp_path / "p.csv", index=False)
    result = starting_config([tmp_path / "p.csv"], output=tmp_path / "c.yaml")
    assert "standardize" not in result.config and result.standardized == {}
    assert "standardize." not in result.explanation()


def test_the_options_are_decided_over_all_sources_together(tmp_path):
    people(200, placeholders=8).to_parquet(tmp_path / "a.parquet")
    people(200).rename(columns={"first_name": "given", "last_name": "surname"}).to_parquet(tmp_path / "b.parquet")
    result = starting_config([tmp_path / "a.parquet", tmp_path / "b.parquet"], output=tmp_path / "c.yaml")
    assert result.config["standardize"] == {"placeholder_names": True}
    assert "16 of 800 sampled first and last names (2.0%)" in result.explanation()
