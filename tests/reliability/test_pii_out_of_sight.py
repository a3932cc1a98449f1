"""No input value (names, emails, phones, streets) in what a demo run prints at INFO or writes
beside its tables: the console, summary.json, metrics.json, report.html."""

from __future__ import annotations

import re

import pandas as pd
import pyarrow.parquet as pq
import pytest

from matcher.cli import main
from tests.conftest import REPO

DEMO = REPO / "configs" / "demo.yaml"
DATA = REPO / "data" / "demo"
# per demo source: its first and last name columns, then the columns that identify a person on their own
NAMES = {"crm": ("given_name", "family_name"), "shop": ("first", "last"), "loyalty": ("first", "surname")}
IDENTIFYING = {"crm": ["email_address", "phone_number", "street_name"], "shop": ["mail", "mobile"], "loyalty": ["email", "tel"]}

pytestmark = pytest.mark.slow


def _personal_values() -> set[str]:
    """Every full name ("first last"), email, phone and street of the demo's inputs: values that name a
    person (a single surname such as "Green" is also a colour in the report's charts)."""
    frames = {
        "crm": pd.read_csv(DATA / "crm.csv", dtype=str),
        "shop": pd.read_json(DATA / "shop.jsonl", lines=True, dtype=str),
        "loyalty": pq.read_table(DATA / "loyalty.parquet").to_pandas().astype("string"),
    }
    values = set()
    for source, frame in frames.items():
        first, last = NAMES[source]
        values |= {f"{a} {b}".strip() for a, b in zip(frame[first].fillna(""), frame[last].fillna("")) if a and b}
        for column in IDENTIFYING[source]:
            values |= {str(v).strip() for v in frame[column].dropna() if len(str(v).strip()) >= 5}
    digits = {re.sub(r"\D", "", v) for v in values}  # phones as the harmonized data holds them (E.164 digits)
    return values | {d for d in digits if len(d) >= 10} | {f"1{d}" for d in digits if len(d) == 10}


def test_a_demo_run_prints_and_writes_no_input_value(spark, capsys, tmp_path):
    capsys.readouterr()
    assert main(["--log-level", "INFO", "run", "--config", str(DEMO), "--output", str(tmp_path / "run")]) == 0
    console = capsys.readouterr()
    texts = {"console": console.out + console.err}
    texts.update({name: (tmp_path / "run" / name).read_text(encoding="utf-8") for name in ("summary.json", "metrics.json")})
    report = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    # the report's bundled (minified) chart libraries and styles are not data ("April", "brown" are in
    # them as month and colour names); the chart specs with the run's data are scanned
    texts["report.html"] = re.sub(r"<script>!function.*?</script>|<style\b.*?</style>", "", report, flags=re.DOTALL)
    assert "const specs" in texts["report.html"]
    assert len(texts["report.html"]) > 1000
    assert len(texts["console"].splitlines()) > 10  # the run did log at INFO
    values = _personal_values()
    assert len(values) > 1000
    pattern = re.compile("|".join(rf"(?<![\w@.-]){re.escape(v)}(?![\w@.-])" for v in sorted(values, key=len, reverse=True)),
                         re.IGNORECASE)
    leaks = {name: sorted(set(pattern.findall(text)))[:5] for name, text in texts.items()}
    assert leaks == {name: [] for name in texts}
