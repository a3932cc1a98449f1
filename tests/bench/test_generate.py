"""``bench.generate``: deterministic, truth covers every row once, long-tailed entities,
households, placeholders, and configs that load. No Spark."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bench.generate import generate
from matcher.config.transform import load_config


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _read(folder: Path, source: dict) -> pd.DataFrame:
    path = folder / source["file"]
    if source["format"] == "csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    return pd.read_parquet(path)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("gen") / "a"
    return out, generate(2000, 4, seed=7, out=out)


def test_same_args_same_bytes_other_seed_differs(small, tmp_path):
    out, _ = small
    again = generate(2000, 4, seed=7, out=tmp_path / "b")
    other = generate(2000, 4, seed=8, out=tmp_path / "c")
    assert _files(out) == _files(tmp_path / "b")
    assert again == json.loads((out / "manifest.json").read_text())
    assert (out / "crm.csv").read_bytes() != (tmp_path / "c" / "crm.csv").read_bytes()
    assert other["people"] != again["people"] or (out / "truth.parquet").read_bytes() != (tmp_path / "c" / "truth.parquet").read_bytes()


def test_truth_covers_every_row_once(small):
    out, manifest = small
    truth = pd.read_parquet(out / "truth.parquet")
    assert list(truth.columns) == ["source", "record_id", "person_id"]
    assert str(truth["person_id"].dtype) == "int64"
    assert not truth.duplicated(["source", "record_id"]).any()
    assert len(truth) == manifest["rows"] == 2000
    for source in manifest["sources"]:
        frame = _read(out, source)
        keys = frame[source["primary_key"]].astype(str)
        assert keys.is_unique
        assert len(frame) == source["rows"]
        assert set(keys) == set(truth.loc[truth["source"] == source["name"], "record_id"])
    assert truth.duplicated(["source", "person_id"]).any()  # duplicates within a source


def test_records_per_person_long_tail(tmp_path):
    manifest = generate(20000, 3, seed=1, out=tmp_path / "t")
    assert 1.2 <= manifest["records_per_person_mean"] <= 2.0
    histogram = {int(k): v for k, v in manifest["records_per_person_histogram"].items()}
    assert histogram[1] > manifest["people"] / 2
    assert manifest["largest_entity"] >= 10
    assert sum(k * v for k, v in histogram.items()) == 20000


def test_households_and_placeholders(small):
    out, manifest = small
    crm = next(s for s in manifest["sources"] if s["name"] == "crm")
    frame = _read(out, crm).replace("", None)
    truth = pd.read_parquet(out / "truth.parquet").set_index("record_id")
    frame["person_id"] = truth.loc[truth["source"] == "crm", "person_id"].reindex(frame["customer_id"]).to_numpy()
    address = frame.dropna(subset=["last_name", "house_no", "street_name", "zip"])
    people_per_address = address.groupby(["last_name", "house_no", "street_name", "zip"])["person_id"].nunique()
    assert (people_per_address > 1).any()
    values = pd.concat([_read(out, s).astype(str).stack() for s in manifest["sources"]]).str.strip().str.lower()
    assert values.isin(["none@none.com", "noemail@gmail.com", "noemail@none.com", "na@na.com"]).any()
    assert values.isin(["(000) 000-0000", "000-000-0000", "+10000000000", "0000000000",
                        "(555) 555-5555", "555-555-5555", "+15555555555", "5555555555"]).any()


def test_configs_load_with_relative_paths(small):
    out, manifest = small
    config = load_config(out / "config.yaml")
    spec = load_config(out / "spec.yaml")
    assert [s.name for s in config.sources] == [s["name"] for s in manifest["sources"]]
    assert Path(config.sources[0].path) == out / manifest["sources"][0]["file"]
    assert "blocking_rules" not in (out / "config.yaml").read_text()
    assert "blocking_rules" in (out / "spec.yaml").read_text()
    assert len(spec.columns) == 7
    raw = (out / "config.yaml").read_text()
    assert "person_id" not in raw and "training" not in raw
