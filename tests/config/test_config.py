"""matcher.config.transform: validation messages that name the key, tradeoff mappings, the model hash."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from conftest import REPO, minimal_config

from matcher.config.transform import config_from_dict, load_config
from matcher.runtime.errors import ConfigError


def config_error(data) -> str:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data, source="x.yaml")
    return str(caught.value)


# --- validation messages ---------------------------------------------------------------


def test_a_minimal_config_is_valid_and_fills_in_defaults():
    config = config_from_dict(minimal_config())
    assert config.resolved_link_type == "dedupe_only"
    assert config.precision_recall_tradeoff == 0.5
    assert config.accuracy_cost_tradeoff == 0.5
    assert config.inputs[0].path == "people.csv"  # no base_dir: paths are left as written


def test_unknown_comparison_kind_names_the_key_and_the_bad_value():
    data = minimal_config(columns=[{"name": "first_name", "kind": "name"}, {"name": "city", "kind": "nmae"}])
    message = config_error(data)
    assert message.startswith("x.yaml: ")
    assert "columns.1.kind" in message
    assert "'nmae'" in message
    assert "'name'" in message and "'postcode'" in message  # the valid kinds are listed


@pytest.mark.parametrize("key", ["name", "inputs", "primary_key", "columns"])
def test_missing_required_key_is_named(key):
    data = minimal_config()
    del data[key]
    message = config_error(data)
    assert f"{key}: Field required" in message


def test_missing_nested_key_is_named_with_its_path():
    data = minimal_config()
    del data["inputs"][0]["path"]
    assert "inputs.0.path: Field required" in config_error(data)


def test_rules_left_out_are_chosen_from_the_data():
    data = minimal_config()
    del data["blocking_rules"], data["training"]
    config = config_from_dict(data)
    assert config.automatic == ["blocking_rules", "training.deterministic_rules", "training.em_blocking_rules"]
    with pytest.raises(RuntimeError, match="chosen from the data"):
        config.active_blocking_rules


def test_rules_written_by_the_user_win_over_the_chosen_ones_and_the_hash_stays_the_users():
    data = minimal_config()
    del data["blocking_rules"], data["training"]["em_blocking_rules"]
    config = config_from_dict(data)
    assert config.automatic == ["blocking_rules", "training.em_blocking_rules"]
    chosen = config.resolved([["city"], "l.first_name = r.first_name"],
                             {"deterministic_rules": [["city"]], "em_blocking_rules": [["first_name"]]})
    assert chosen.active_blocking_rules == [["city"], "l.first_name = r.first_name"]
    assert chosen.training.em_blocking_rules == [["first_name"]]
    assert chosen.training.deterministic_rules == data["training"]["deterministic_rules"]  # the user's
    assert chosen.model_hash() == config.model_hash()


def test_an_empty_rule_list_is_refused_with_the_way_out():
    message = config_error(minimal_config(blocking_rules=[]))
    assert "blocking_rules: give at least one rule, or leave the key out" in message


def test_unknown_key_is_rejected_by_name():
    assert "precision_recal_tradeoff" in config_error(minimal_config(precision_recal_tradeoff=0.9))


def test_tradeoff_outside_zero_to_one_names_the_key():
    message = config_error(minimal_config(precision_recall_tradeoff=1.5))
    assert "precision_recall_tradeoff: Input should be less than or equal to 1" in message


def test_repeated_columns_are_rejected_with_their_names():
    data = minimal_config(columns=[{"name": "city", "kind": "exact"}, {"name": "city", "kind": "text"}])
    assert "columns must be unique, repeated: city" in config_error(data)


def test_repeated_input_names_are_rejected():
    data = minimal_config(inputs=[{"name": "a", "path": "1.csv"}, {"name": "a", "path": "2.csv"}])
    assert "input names must be unique, repeated: a" in config_error(data)


def test_primary_key_cannot_be_a_matching_column():
    data = minimal_config(primary_key="city")
    assert "primary_key 'city' cannot also be a matching column" in config_error(data)


def test_a_top_level_list_is_not_a_config():
    assert "expected a mapping at the top level, got list" in config_error(["name", "t"])


@pytest.mark.parametrize(
    ("link_type", "n_inputs", "expected"),
    [
        ("link_only", 1, "link_type 'link_only' needs at least two inputs"),
        ("link_and_dedupe", 1, "link_type 'link_and_dedupe' needs at least two inputs"),
        ("dedupe_only", 2, "link_type 'dedupe_only' takes exactly one input"),
    ],
)
def test_link_type_inconsistent_with_inputs_is_rejected(link_type, n_inputs, expected):
    inputs = [{"name": f"in{i}", "path": f"{i}.csv"} for i in range(n_inputs)]
    assert expected in config_error(minimal_config(inputs=inputs, link_type=link_type))


def test_link_type_defaults_to_dedupe_for_one_input_and_link_and_dedupe_for_several():
    two = [{"name": "a", "path": "a.csv"}, {"name": "b", "path": "b.csv"}]
    assert config_from_dict(minimal_config()).resolved_link_type == "dedupe_only"
    assert config_from_dict(minimal_config(inputs=two)).resolved_link_type == "link_and_dedupe"
    assert config_from_dict(minimal_config(inputs=two, link_type="link_only")).resolved_link_type == "link_only"


# --- reading files -----------------------------------------------------------------------


def test_missing_config_file_is_named(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found"):
        load_config(path)


def test_bad_yaml_names_the_file_and_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: t\ninputs: [a\ncolumns: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: invalid YAML (line 3")
    assert "\n" not in message


def test_empty_config_file_is_named(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"empty\.yaml: config file is empty"):
        load_config(path)


def test_validation_errors_from_a_file_name_the_file(write_config):
    path = write_config(minimal_config(columns=[{"name": "city", "kind": "nmae"}]))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: columns.0.kind: unknown value 'nmae'")


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    folder = tmp_path / "project" / "jobs"
    folder.mkdir(parents=True)
    path = folder / "x.yaml"
    path.write_text(yaml.safe_dump(minimal_config(output="out")), encoding="utf-8")
    config = load_config(path)
    assert config.inputs[0].path == str(folder / "people.csv")
    assert config.output == str(folder / "out")


def test_relative_paths_in_a_configs_folder_resolve_against_the_project_root(tmp_path):
    folder = tmp_path / "project" / "configs"
    folder.mkdir(parents=True)
    path = folder / "x.yaml"
    remote = [{"name": "a", "path": "data/a.csv"}, {"name": "b", "path": "s3://bucket/b"}, {"name": "c", "path": "/abs/c"}]
    path.write_text(yaml.safe_dump(minimal_config(inputs=remote)), encoding="utf-8")
    config = load_config(path)
    assert [i.path for i in config.inputs] == [str(tmp_path / "project" / "data" / "a.csv"), "s3://bucket/b", "/abs/c"]


def test_the_single_source_example_config_loads_and_points_at_the_bundled_data():
    config = load_config(REPO / "configs" / "fake_1000.yaml")
    assert Path(config.inputs[0].path) == REPO / "data" / "demo" / "fake_1000.csv"
    assert Path(config.inputs[0].path).exists()


# --- tradeoffs -------------------------------------------------------------------------


def with_gated_rule(tradeoff: float, gate: float = 0.5) -> dict:
    rules = [["first_name"], {"rule": ["city"], "min_accuracy_cost_tradeoff": gate}, "l.city = r.city and 1=1"]
    return minimal_config(blocking_rules=rules, accuracy_cost_tradeoff=tradeoff)


@pytest.mark.parametrize(
    ("tradeoff", "expected"),
    [
        (0.0, [["first_name"], "l.city = r.city and 1=1"]),
        (0.49, [["first_name"], "l.city = r.city and 1=1"]),
        (0.5, [["first_name"], ["city"], "l.city = r.city and 1=1"]),  # the gate is inclusive
        (1.0, [["first_name"], ["city"], "l.city = r.city and 1=1"]),
    ],
)
def test_accuracy_cost_tradeoff_switches_gated_blocking_rules_on_at_their_minimum(tradeoff, expected):
    assert config_from_dict(with_gated_rule(tradeoff)).active_blocking_rules == expected


def test_a_gated_rule_with_no_minimum_is_always_on():
    rules = [{"rule": ["city"]}]
    assert config_from_dict(minimal_config(blocking_rules=rules, accuracy_cost_tradeoff=0.0)).active_blocking_rules == [["city"]]


def test_example_email_rule_is_on_at_its_tradeoff_and_off_below_it():
    demo = yaml.safe_load((REPO / "configs" / "fake_1000.yaml").read_text(encoding="utf-8"))
    on = config_from_dict(demo)
    off = config_from_dict({**demo, "accuracy_cost_tradeoff": 0.4})
    assert ["email"] in on.active_blocking_rules
    assert ["email"] not in off.active_blocking_rules
    assert len(on.active_blocking_rules) == len(off.active_blocking_rules) + 1


def test_accuracy_cost_tradeoff_sets_u_sample_size_unless_given():
    assert config_from_dict(minimal_config(accuracy_cost_tradeoff=0.0)).u_max_pairs == pytest.approx(1e5)
    assert config_from_dict(minimal_config(accuracy_cost_tradeoff=0.5)).u_max_pairs == pytest.approx(1e6)
    assert config_from_dict(minimal_config(accuracy_cost_tradeoff=1.0)).u_max_pairs == pytest.approx(1e7)
    explicit = minimal_config()
    explicit["training"]["u_max_pairs"] = 1234
    assert config_from_dict(explicit).u_max_pairs == 1234


# --- model hash ------------------------------------------------------------------------


def model_hash(data: dict) -> str:
    return config_from_dict(data).model_hash()


def test_model_hash_is_stable_for_the_same_config():
    first = model_hash(minimal_config())
    assert model_hash(minimal_config()) == first
    assert len(first) == 16 and all(c in "0123456789abcdef" for c in first)


def test_model_hash_does_not_depend_on_key_order_in_the_yaml(write_config):
    data = minimal_config()
    reordered = dict(reversed(list(data.items())))
    reordered["training"] = dict(reversed(list(data["training"].items())))
    assert load_config(write_config(data, "a.yaml")).model_hash() == load_config(write_config(reordered, "b.yaml")).model_hash()


def test_model_hash_ignores_what_does_not_shape_the_model():
    base = model_hash(minimal_config())
    assert model_hash(minimal_config(name="other")) == base
    assert model_hash(minimal_config(output="elsewhere")) == base
    assert model_hash(minimal_config(precision_recall_tradeoff=0.9)) == base
    assert model_hash(minimal_config(inputs=[{"name": "people", "path": "moved/people.csv", "format": "csv"}])) == base


def test_model_hash_changes_with_the_columns():
    base = model_hash(minimal_config())
    columns = minimal_config()["columns"]
    changed_kind = copy.deepcopy(columns)
    changed_kind[1]["kind"] = "text"
    with_tf = copy.deepcopy(columns)
    with_tf[1]["term_frequency"] = True
    extra = [*copy.deepcopy(columns), {"name": "dob", "kind": "date"}]
    hashes = {model_hash(minimal_config(columns=c)) for c in (changed_kind, with_tf, extra)}
    assert base not in hashes
    assert len(hashes) == 3


def test_model_hash_changes_with_seed_training_and_accuracy_cost_tradeoff():
    base = model_hash(minimal_config())
    training = copy.deepcopy(minimal_config()["training"])
    training["em_blocking_rules"] = [["first_name"]]
    others = {
        model_hash(minimal_config(seed=7)),
        model_hash(minimal_config(training=training)),
        model_hash(minimal_config(accuracy_cost_tradeoff=0.9)),
        model_hash(minimal_config(primary_key="other_pk")),
    }
    assert base not in others
    assert len(others) == 4


def test_a_source_sharing_no_matching_column_with_the_others_is_named():
    data = {
        "name": "s",
        "sources": [
            {"name": "crm", "path": "crm.csv", "format": "csv", "primary_key": "id", "columns": {"first_name": "fn", "email": "em"}},
            {"name": "shop", "path": "shop.csv", "format": "csv", "primary_key": "id", "columns": {"phone": "tel"}},
        ],
        "columns": [{"name": "first_name", "kind": "name"}, {"name": "email", "kind": "email"}],
    }
    message = config_error(data)
    assert "sources.1 (shop) maps none of the matching columns (first_name, email)" in message
