"""matcher.labels.files: FindMatches labeling files in and out, validation, pairs, the label store, the split."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
from conftest import minimal_config

from matcher.config.transform import config_from_dict
from matcher.labels.files import (
    LabelStore,
    export_labels,
    held_out,
    import_labels,
    labeled_rows,
    pairs_from_sets,
    read_labeling_file,
    sets_from_pair_labels,
    training_pairs,
)
from matcher.runtime.errors import InputDataError

HEADER = "labeling_set_id,label,pk,first_name,city\n"
KNOWN = {str(i) for i in range(1, 21)}


def config(**labels):
    return config_from_dict(minimal_config(labels=labels))


def write(tmp_path: Path, body: str, name: str = "labels.csv", header: str = HEADER) -> Path:
    path = tmp_path / name
    path.write_text(header + body, encoding="utf-8")
    return path


SETS = (
    "s1,A,1,Ann,Leeds\n"
    "s1,A,2,Anne,Leeds\n"
    "s1,B,3,Bob,York\n"
    "s2,X,4,Cy,Hull\n"
    "s2,Y,5,Di,Hull\n"
)


def test_same_label_in_a_set_is_a_match_and_different_labels_a_non_match(tmp_path):
    rows = read_labeling_file(write(tmp_path, SETS), config())
    pairs = pairs_from_sets(rows, config())
    got = {(r.id_l, r.id_r): r.is_match for r in pairs.itertuples()}
    # rows in different sets say nothing about each other: no (1, 4) etc.
    assert got == {("1", "2"): True, ("1", "3"): False, ("2", "3"): False, ("4", "5"): False}


def test_pair_ids_are_ordered_numerically_for_whole_number_keys(tmp_path):
    rows = read_labeling_file(write(tmp_path, "s1,A,10,a,b\ns1,A,9,c,d\n"), config())
    assert pairs_from_sets(rows, config())[["id_l", "id_r"]].values.tolist() == [["9", "10"]]


def test_a_byte_order_mark_is_rejected(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (HEADER + SETS).encode())
    with pytest.raises(InputDataError, match="bom.csv: starts with a UTF-8 byte-order mark"):
        read_labeling_file(path, config())


def test_bytes_that_are_not_utf8_are_rejected_with_their_line(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + "s1,A,1,Zoë,Leeds\n").encode("latin-1"))
    with pytest.raises(InputDataError, match=r"latin1.csv: not UTF-8 \(invalid byte 0xeb on line 2\)"):
        read_labeling_file(path, config())


@pytest.mark.parametrize("header, missing", [
    ("set,label,pk,first_name,city\n", "labeling_set_id"),
    ("labeling_set_id,lbl,pk,first_name,city\n", "label"),
    ("labeling_set_id,label,id,first_name,city\n", "pk"),
])
def test_missing_columns_are_named(tmp_path, header, missing):
    path = write(tmp_path, "s1,A,1,Ann,Leeds\n", header=header)
    with pytest.raises(InputDataError, match=f"labels.csv: column\\(s\\) {missing} missing"):
        read_labeling_file(path, config())


def test_a_set_without_any_label_is_an_empty_set_error_naming_it(tmp_path):
    path = write(tmp_path, SETS + "s3,,6,Ed,Bath\ns3,,7,Edd,Bath\n")
    with pytest.raises(InputDataError, match=r"labeling set\(s\) with no labeled row: s3"):
        labeled_rows(read_labeling_file(path, config()), path)


def test_a_record_twice_in_one_set_is_rejected(tmp_path):
    with pytest.raises(InputDataError, match="appear twice in the same labeling set .*s1/1"):
        read_labeling_file(write(tmp_path, "s1,A,1,a,b\ns1,B,1,a,b\n"), config())


def test_sets_over_fifty_rows_are_accepted_with_a_warning(tmp_path, caplog):
    body = "".join(f"big,A,{i},n{i},c\n" for i in range(51))
    with caplog.at_level(logging.WARNING, logger="matcher.labels.files"):
        rows = read_labeling_file(write(tmp_path, body), config())
    assert len(rows) == 51
    assert "1 labeling set(s) have more than 50 rows" in caplog.text and "big" in caplog.text


def test_records_not_in_the_source_are_listed(tmp_path):
    path = write(tmp_path, SETS + "s3,A,404,x,y\ns3,B,999,z,w\n")
    with pytest.raises(InputDataError, match=r"2 labeled record\(s\) are not in the source \(by pk\): 404, 999"):
        import_labels(config(), tmp_path / "run", path, KNOWN)
    assert not LabelStore(tmp_path / "run").exists()


def test_imports_append_by_default_and_replace_discards_earlier_labels(tmp_path):
    run = tmp_path / "run"
    first = import_labels(config(), run, write(tmp_path, SETS, "a.csv"), KNOWN)
    second = import_labels(config(), run, write(tmp_path, "s9,A,7,Gus,Ely\ns9,A,8,Gus,Ely\n", "b.csv"), KNOWN)
    assert (first["sets"], first["pairs"], second["sets"], second["pairs"], second["imports"]) == (2, 4, 3, 5, 2)
    replaced = import_labels(config(), run, write(tmp_path, "s9,A,7,Gus,Ely\ns9,A,8,Gus,Ely\n", "b.csv"), KNOWN, replace=True)
    assert (replaced["sets"], replaced["pairs"], replaced["imports"]) == (1, 1, 1)


def test_a_set_id_imported_before_is_refused(tmp_path):
    run = tmp_path / "run"
    import_labels(config(), run, write(tmp_path, SETS, "a.csv"), KNOWN)
    with pytest.raises(InputDataError, match=r"labeling set id\(s\) already imported: s1"):
        import_labels(config(), run, write(tmp_path, "s1,A,9,a,b\ns1,A,10,a,b\n", "b.csv"), KNOWN)


def test_conflicting_labels_across_imports_are_reported_with_their_pairs(tmp_path):
    run = tmp_path / "run"
    import_labels(config(), run, write(tmp_path, SETS, "a.csv"), KNOWN)
    # set s7 says 2 and 1 are different entities; s1 said they are the same
    with pytest.raises(InputDataError, match=r"1 pair\(s\) labeled both match and non-match .*: 1~2"):
        import_labels(config(), run, write(tmp_path, "s7,P,2,Anne,Leeds\ns7,Q,1,Ann,Leeds\n", "b.csv"), KNOWN)
    assert LabelStore(run).info()["imports"] == 1  # nothing of the conflicting file was stored


def test_export_writes_every_label_back_in_the_same_format(tmp_path):
    run = tmp_path / "run"
    import_labels(config(), run, write(tmp_path, SETS, "a.csv"), KNOWN)
    import_labels(config(), run, write(tmp_path, "s9,A,7,Gus,Ely\ns9,A,8,Gus,Ely\n", "b.csv"), KNOWN)
    out = tmp_path / "out" / "all.csv"
    assert export_labels(run, out) == {"rows": 7, "sets": 3, "output": str(out)}
    data = out.read_bytes()
    assert not data.startswith(b"\xef\xbb\xbf")
    assert data.decode("utf-8").splitlines()[0] == HEADER.strip()
    back = read_labeling_file(out, config())
    original = pd.concat([read_labeling_file(tmp_path / n, config()) for n in ("a.csv", "b.csv")], ignore_index=True)
    pd.testing.assert_frame_equal(back, original)


def test_export_without_labels_is_an_error(tmp_path):
    with pytest.raises(InputDataError, match="no labels imported into this run folder"):
        export_labels(tmp_path / "run", tmp_path / "x.csv")


def test_the_holdout_split_is_seeded_by_set_id_and_near_the_configured_share():
    ids = pd.Series([f"set-{i}" for i in range(2000)])
    split = held_out(ids, config(holdout_share=0.25))
    assert 0.22 < split.mean() < 0.28
    # the same set is held out whatever else is in the file
    assert held_out(ids[::-1], config(holdout_share=0.25)).sort_index().equals(split)
    assert not held_out(ids, config(holdout_share=0.0)).any()


def test_training_pairs_leave_out_the_held_out_sets(tmp_path):
    run = tmp_path / "run"
    body = "".join(f"s{i},A,{2 * i + 1},a,b\ns{i},A,{2 * i + 2},a,b\n" for i in range(40))
    import_labels(config(holdout_share=0.3), run, write(tmp_path, body), {str(i) for i in range(1, 81)})
    train, held, digest = training_pairs(config(holdout_share=0.3), run)
    assert len(train) + len(held) == 40 and len(held) > 0 and len(train) > 0
    assert not set(train["labeling_set_id"]) & set(held["labeling_set_id"])
    assert digest == LabelStore(run).info()["labels_hash"]


def test_clerical_pair_labels_become_sets_of_two_rows():
    source = pd.DataFrame({"pk": ["1", "2", "3"], "first_name": ["a", "b", "c"], "city": ["x", "y", "z"]})
    pairs = pd.DataFrame({"id_l": [1, 1], "id_r": [2, 3], "is_match": [True, False]})
    sets = sets_from_pair_labels(pairs, source, config())
    assert sets[["labeling_set_id", "label", "pk"]].values.tolist() == [
        ["pair-0", "a", "1"], ["pair-0", "a", "2"], ["pair-1", "a", "1"], ["pair-1", "b", "3"]
    ]
    got = pairs_from_sets(sets, config())
    assert got[["id_l", "id_r", "is_match"]].values.tolist() == [["1", "2", True], ["1", "3", False]]
