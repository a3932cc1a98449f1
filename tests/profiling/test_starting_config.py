"""``matcher init``: a starting config from the demo sources and from small files, its explanation and its errors."""

from __future__ import annotations

import re
import shutil

import pandas as pd
import pytest
import yaml
from conftest import REPO
from init_helpers import load_written, run_init

import matcher
from matcher.config.transform import config_from_dict
from matcher.profiling.starting_config import starting_config, write_starting_config
from matcher.runtime.errors import ConfigError, InputDataError

DEMO = [REPO / "data/demo/crm.csv", REPO / "data/demo/shop.jsonl", REPO / "data/demo/loyalty.parquet"]


@pytest.fixture(scope="module")
def demo():
    return starting_config(DEMO, output=REPO / "configs" / "mine.yaml", truth_column="person_id")


def test_demo_sources_map_onto_the_same_canonical_fields(demo):
    crm, shop, loyalty = demo.config["sources"]
    assert [s["name"] for s in demo.config["sources"]] == ["crm", "shop", "loyalty"]
    assert [s["format"] for s in demo.config["sources"]] == ["csv", "json", "parquet"]
    assert [s["primary_key"] for s in demo.config["sources"]] == ["customer_no", "id", "member_id"]
    # what configs/demo.yaml maps by hand
    assert crm["columns"] == {"first_name": "given_name", "last_name": "family_name", "dob": "birth_date",
                              "email": "email_address", "phone": "phone_number", "house_number": "house_no",
                              "street": "street_name", "postcode": "zip", "city": "city",
                              "updated_at": "last_modified", "person_id": "person_id"}
    assert shop["columns"] == {"first_name": "first", "last_name": "last", "dob": "dob", "email": "mail",
                               "phone": "mobile", "postcode": "ship_zip", "city": "ship_city",
                               "updated_at": "updated", "person_id": "person_id"}
    assert loyalty["columns"] == {"first_name": "first", "last_name": "surname", "dob": "birthdate", "phone": "tel",
                                  "email": "email", "postcode": "postal_code", "city": "town", "tier": "tier",
                                  "updated_at": "enrolled_at", "person_id": "person_id"}
    assert (crm["date_formats"], "date_formats" in shop, loyalty["date_formats"]) == (["%m/%d/%Y"], False, ["%d.%m.%Y"])
    # paths outside the config's project root are absolute; configs/ resolves against the repository root
    assert crm["path"] == "data/demo/crm.csv"


def test_demo_top_level_compares_identifying_fields_and_never_the_truth(demo):
    columns = {c["name"]: (c["kind"], c.get("term_frequency", False)) for c in demo.config["columns"]}
    assert columns["first_name_canonical"] == ("name", True) and columns["last_name"] == ("name", True)
    assert columns["dob"] == ("birth_date", False) and columns["email"][0] == "email" and columns["phone"][0] == "phone"
    assert columns["postcode"] == ("postcode", True) and "city" not in columns and "street" not in columns  # the postcode stands for the address
    assert columns["source_system"] == ("exact", False)  # several sources: is one person listed twice in one?
    swaps = {c["name"]: c["swapped_with"] for c in demo.config["columns"] if "swapped_with" in c}
    assert swaps == {"first_name_canonical": "last_name", "last_name": "first_name_canonical"}  # a form may swap them
    assert "person_id" not in columns and "updated_at" not in columns
    assert demo.config["truth_column"] == "person_id"
    assert demo.config["quality"] == {"require_any": [["first_name", "last_name", "dob", "email", "phone"]]}
    assert demo.config["output"] == "output/mine"
    assert "blocking_rules" not in demo.config and "training" not in demo.config
    config = config_from_dict(demo.config)
    assert config.sources is not None and config.truth_column == "person_id"


def test_the_explanation_gives_reasons_and_never_values(demo):
    text = demo.explanation()
    assert "source crm (data/demo/crm.csv, csv, 450 rows): primary key customer_no" in text
    assert re.search(r"birth_date\s+-> dob, compared \(birth_date\): name 'birth_date' and content: \d+% look like dates %m/%d/%Y", text)
    assert re.search(r"zip\s+-> postcode, compared \(postcode\): .*US ZIP codes \(99999 or 99999-9999\)", text)
    assert re.search(r"state\s+skipped: one value in all 450 non-null rows", text)
    assert re.search(r"person_id\s+-> person_id \[\w+\], not compared: the truth column", text)
    values = set()
    for path in DEMO:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else (
            pd.read_json(path, lines=True, dtype=False) if path.suffix == ".jsonl" else pd.read_csv(path, dtype=str))
        for column in frame.columns:
            values |= {str(v) for v in frame[column].dropna() if len(str(v)) >= 4}
    words = {w.lower() for w in re.findall(r"[\w@.+\-/()']+", text)}
    assert sorted(v for v in values if v.lower() in words) == []


def test_without_truth_a_shared_identifier_is_compared_and_flagged():
    result = starting_config(DEMO[:2], output=REPO / "configs" / "x.yaml")
    assert {"name": "person_id", "kind": "exact"} in result.config["columns"]
    assert "pass --truth-column person_id" in result.explanation()


def test_columns_named_differently_are_matched_by_kind_and_shared_values(tmp_path):
    codes = [f"L{i:03d}" for i in range(40)]
    pd.DataFrame({"rec_id": range(40), "fname": ["Ann", "Bob", "Cy", "Dee"] * 10, "club_code": codes[:40],
                  "mobile": [f"(206) 555-{1000 + i}" for i in range(40)]}).to_csv(tmp_path / "a.csv", index=False)
    pd.DataFrame({"ID": range(30), "FirstName": ["Ann", "Eve", "Cy"] * 10, "membership": codes[10:40],
                  "Telephone": [f"+1 206 555 {1000 + i}" for i in range(30)],
                  "notes": [f"asked about order {i} and a refund today" for i in range(30)]}).to_parquet(tmp_path / "b.parquet")
    result = starting_config([tmp_path / "a.csv", tmp_path / "b.parquet"], output=tmp_path / "c.yaml")
    a, b = result.config["sources"]
    assert (a["primary_key"], b["primary_key"]) == ("rec_id", "ID")
    assert a["columns"] == {"first_name": "fname", "club_code": "club_code", "phone": "mobile"}
    assert b["columns"] == {"first_name": "FirstName", "club_code": "membership", "phone": "Telephone"}
    assert (a["path"], b["path"]) == ("a.csv", "b.parquet")  # beside the config: relative
    assert re.search(r"notes\s+skipped: .*all values distinct and in no other source", result.explanation())


def test_a_written_config_loads_as_matcher_run_reads_it(tmp_path):
    (tmp_path / "data").mkdir()
    for path in DEMO:
        shutil.copy(path, tmp_path / "data" / path.name)
    out = tmp_path / "configs" / "mine.yaml"
    text = write_starting_config([tmp_path / "data" / p.name for p in DEMO], out, truth_column="person_id")
    assert text.endswith(f"run it with: matcher run --config {out}")
    data = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert [s["path"] for s in data["sources"]] == ["data/crm.csv", "data/shop.jsonl", "data/loyalty.parquet"]
    config = load_written(out)
    assert [s.path for s in config.sources] == [str(tmp_path / "data" / p.name) for p in DEMO]
    assert config.output == str(tmp_path / "output" / "mine")
    assert matcher.write_starting_config is write_starting_config and "starting_config" in matcher.__all__


def test_init_on_the_command_line_writes_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "mine.yaml"
    sources = [a for p in DEMO[:2] for a in ("--source", p)]
    code, stdout, stderr = run_init(capsys, *sources, "--output", out, "--name", "My Run")
    assert (code, stderr) == (0, ""), stderr
    assert "primary key customer_no" in stdout and f"wrote {out}" in stdout
    assert yaml.safe_load(out.read_text())["name"] == "my_run"
    code, stdout, stderr = run_init(capsys, *sources, "--output", out)
    assert code == 2 and stderr == f"matcher: error: {out}: already exists; choose another --output or pass --force to overwrite it\n"
    assert run_init(capsys, *sources, "--output", out, "--force")[0] == 0


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("files", "extra", "message"), [
    ({}, [], "missing.csv: source file not found"),
    ({"a.csv": ""}, [], "a.csv: source file is empty"),
    ({"a.csv": "id,name\n"}, [], "a.csv: source file has no rows"),
    ({"a.csv": "id,surname\n1,Lee\n1,Li\n"}, [],
     "a.csv: no column is unique and non-null in every row, so none can be the source's primary_key"),
    ({"a.csv": "id,surname\n1,Lee\n2,Li\n", "b.csv": "id,email\n1,a@x.com\n2,b@y.org\n"}, [],
     "b.csv: source 'b' has no column in common with the other sources (its compared columns: email)"),
    ({"a.csv": "id,surname\n1,Lee\n2,Li\n"}, ["--truth-column", "cluster"], "a.csv: truth column 'cluster' is missing"),
])
def test_bad_input_is_one_line_naming_the_file(tmp_path, capsys, files, extra, message):
    paths = [write(tmp_path / name, text) for name, text in files.items()] or [tmp_path / "missing.csv"]
    args = [a for p in paths for a in ("--source", p)]
    code, stdout, stderr = run_init(capsys, *args, "--output", tmp_path / "out.yaml", *extra)
    assert code == 2 and stdout == ""
    assert len(stderr.splitlines()) == 1 and stderr.startswith("matcher: error: ") and message in stderr, stderr
    assert not (tmp_path / "out.yaml").exists()


def test_a_one_row_source_warns_and_still_writes(tmp_path, capsys):
    a = write(tmp_path / "a.csv", "id,surname,email\n1,Lee,lee@x.com\n2,Li,li@y.org\n3,Lo,lo@z.net\n")
    b = write(tmp_path / "b.csv", "key,last_name\n7,Lee\n")
    code, stdout, stderr = run_init(capsys, "--source", a, "--source", b, "--output", tmp_path / "c.yaml")
    assert code == 0, stderr
    assert f"warning: {b}: source has one row" in stdout
    assert yaml.safe_load((tmp_path / "c.yaml").read_text())["sources"][1]["primary_key"] == "key"


def test_repeated_sources_and_none_are_config_errors(tmp_path):
    a = write(tmp_path / "a.csv", "id,surname\n1,Lee\n2,Li\n")
    with pytest.raises(ConfigError, match="source given more than once"):
        starting_config([a, a], output=tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="at least one --source"):
        starting_config([], output=tmp_path / "c.yaml")
    with pytest.raises(InputDataError, match="b.csv: source file not found"):
        starting_config([a, tmp_path / "b.csv"], output=tmp_path / "c.yaml")


def test_columns_that_would_repeat_or_fake_evidence_are_left_out(tmp_path, capsys):
    rows = pd.DataFrame({
        "id": range(40), "first_name": ["ann", "bob", "cy", "dee"] * 10, "last_name": ["lee", "ng", "ox", "poe"] * 10,
        "full_name": ["ann lee", "bob ng", "cy ox", "dee poe"] * 10, "dob": ["1990-01-02", "1985-03-04"] * 20,
        "age": [34, 39] * 20, "household_id": [f"h{i // 3}" for i in range(40)], "tier": ["gold", "silver"] * 20,
    })
    rows.to_csv(tmp_path / "people.csv", index=False)
    code, out, _ = run_init(capsys, "--source", tmp_path / "people.csv", "--output", tmp_path / "c.yaml")
    assert code == 0
    compared = {c["name"] for c in yaml.safe_load((tmp_path / "c.yaml").read_text())["columns"]}
    assert compared == {"first_name_canonical", "last_name", "dob"}
    for reason in ("a full name repeats their evidence", "an age repeats it", "an identifier of a group",
                   "a category of 2 values"):
        assert reason in out, reason


def _addresses(n: int, offset: int) -> tuple[list[str], list[str]]:
    return [f"{100 + i} {['oak', 'elm', 'pine', 'birch', 'ash'][i % 5]} street" for i in range(offset, offset + n)], \
           [f"{98000 + i:05d}" for i in range(offset, offset + n)]


def test_a_persons_own_address_holds_the_address_fields_and_another_partys_is_not_compared(tmp_path):
    streets, zips = _addresses(40, 0)
    pd.DataFrame({"id": range(40), "first_name": ["ann", "bob"] * 20, "street": streets, "zip": zips}).to_csv(tmp_path / "a.csv", index=False)
    work_streets, work_zips = _addresses(40, 500)
    pd.DataFrame({"id": range(40), "first_name": ["ann", "bob"] * 20, "employer_id": [i % 7 for i in range(40)],
                  "employer_street": work_streets, "employer_zip": work_zips,
                  "mailing_address_street": streets, "mailing_address_zip": zips}).to_csv(tmp_path / "b.csv", index=False)
    result = starting_config([tmp_path / "a.csv", tmp_path / "b.csv"], output=tmp_path / "c.yaml")
    b = result.config["sources"][1]["columns"]
    assert (b["street"], b["postcode"]) == ("mailing_address_street", "mailing_address_zip")
    assert b["employer_street"] == "employer_street" and b["employer_id"] == "employer_id"  # not merged with the person's
    compared = {c["name"] for c in result.config["columns"]}
    assert "postcode" in compared and not {c for c in compared if c.startswith("employer")}
    assert re.search(r"mailing_address_zip .*chosen over employer_zip: named as the person's own", result.explanation())
    assert re.search(r"employer_zip .*named as another party's", result.explanation())


def test_between_two_unnamed_addresses_the_one_the_other_sources_share_holds_the_fields(tmp_path):
    streets, zips = _addresses(40, 0)
    pd.DataFrame({"id": range(40), "first_name": ["ann", "bob"] * 20, "street": streets, "zip": zips}).to_csv(tmp_path / "a.csv", index=False)
    other_streets, other_zips = _addresses(40, 500)
    pd.DataFrame({"id": range(40), "first_name": ["ann", "bob"] * 20,  # the first address is another one
                  "street_1": other_streets, "zip_1": other_zips, "street_2": streets, "zip_2": zips}).to_csv(tmp_path / "b.csv", index=False)
    result = starting_config([tmp_path / "a.csv", tmp_path / "b.csv"], output=tmp_path / "c.yaml")
    b = result.config["sources"][1]["columns"]
    assert (b["street"], b["postcode"]) == ("street_2", "zip_2")
    assert re.search(r"zip_2 .*chosen over zip_1: shares more values with the other sources \(100% against 0%\)", result.explanation())


def test_an_event_date_stored_as_numbers_is_not_compared(tmp_path):
    pd.DataFrame({"id": range(40), "first_name": ["ann", "bob"] * 20, "dob": ["1990-01-02", "1985-03-04"] * 20,
                  "event_date": pd.date_range("2020-01-01", periods=40).strftime("%Y%m%d").astype(int)}).to_parquet(tmp_path / "events.parquet")
    result = starting_config([tmp_path / "events.parquet"], output=tmp_path / "c.yaml")
    assert "event_date" not in {c["name"] for c in result.config["columns"]}
    assert re.search(r"event_date +skipped: .*an event date, not evidence of identity", result.explanation())


def test_a_national_id_is_compared_with_levels_for_mistyped_digits(tmp_path):
    pd.DataFrame({"id": range(40), "first_name": ["ann", "bob"] * 20,
                  "ssn": [f"{123450000 + i}" for i in range(40)]}).to_csv(tmp_path / "people.csv", index=False)
    result = starting_config([tmp_path / "people.csv"], output=tmp_path / "c.yaml")
    assert {"name": "national_id", "kind": "id_number"} in result.config["columns"]
