"""The ``sources:``, ``quality:`` and ``golden:`` config sections: validated, with errors that name the key."""

from __future__ import annotations

import pytest

from matcher.config.transform import config_from_dict
from matcher.runtime.errors import ConfigError


def data(**overrides) -> dict:
    base = {
        "name": "s",
        "sources": [{"name": "crm", "path": "crm.csv", "format": "csv", "primary_key": "id",
                     "columns": {"first_name": "fn", "last_name": "ln", "tier": "tier"}}],
        "columns": [{"name": "first_name_canonical", "kind": "name"}, {"name": "last_name", "kind": "name"}],
        "blocking_rules": [["last_name"]],
        "training": {"deterministic_rules": [["last_name"]], "em_blocking_rules": [["last_name"]]},
    }
    base.update(overrides)
    return base


def test_a_sources_config_matches_one_harmonized_input_keyed_by_record_id():
    config = config_from_dict(data())
    assert [i.name for i in config.inputs] == ["harmonized"]
    assert config.primary_key == "record_id"
    assert config.resolved_link_type == "dedupe_only"


def test_configs_without_sources_are_untouched():
    config = config_from_dict({**data(), "sources": None, "inputs": [{"name": "a", "path": "a.csv"}], "primary_key": "id",
                               "columns": [{"name": "last_name", "kind": "name"}]})
    assert config.sources is None and config.primary_key == "id"


def test_sources_and_inputs_together_are_refused():
    with pytest.raises(ConfigError, match="either 'sources'.*or 'inputs' \\+ 'primary_key'"):
        config_from_dict(data(inputs=[{"name": "a", "path": "a.csv"}]))


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"columns": [{"name": "surname", "kind": "name"}]}, "columns: surname is neither a canonical field nor mapped"),
        ({"quality": {"required": ["emial"]}}, "quality.required: emial is neither"),
        ({"quality": {"parseable": ["last_name"]}}, "parseable: last_name (only date, email, phone and timestamp"),
        ({"golden": {"source_priority": ["erp"]}}, "golden.source_priority: unknown source(s) erp"),
        ({"golden": {"rules": {"email": "most_recent"}, "timestamp_column": "modified"}}, "golden.timestamp_column: modified is neither"),
        ({"golden": {"default_rule": "newest"}}, "golden.default_rule"),
    ],
)
def test_unknown_fields_rules_and_sources_are_named(overrides, fragment):
    with pytest.raises(ConfigError) as err:
        config_from_dict(data(**overrides), source="x.yaml")
    assert fragment in str(err.value)


def test_source_system_can_be_a_matching_column_but_not_a_profile_field():
    config = config_from_dict(data(columns=[{"name": "last_name", "kind": "name"}, {"name": "source_system", "kind": "exact"}]))
    assert config.column_names == ["last_name", "source_system"]
    with pytest.raises(ConfigError, match="golden.fields: source_system is neither"):
        config_from_dict(data(golden={"fields": ["source_system"]}))


def test_the_noisy_form_options_are_off_unless_asked_for():
    assert not config_from_dict(data()).standardize.placeholder_names
    assert not config_from_dict(data()).standardize.date_ocr_repair
    on = config_from_dict(data(standardize={"placeholder_names": True, "date_ocr_repair": True})).standardize
    assert on.placeholder_names and on.date_ocr_repair


def test_repeated_source_names_and_reserved_targets_are_refused():
    crm = data()["sources"][0]
    with pytest.raises(ConfigError, match="source names must be unique, repeated: crm"):
        config_from_dict(data(sources=[crm, crm]))
    with pytest.raises(ConfigError, match="reserved"):
        config_from_dict(data(sources=[{**crm, "columns": {"record_id": "id"}}]))


def test_source_paths_resolve_against_the_base_folder(tmp_path):
    config = config_from_dict(data(), base_dir=tmp_path)
    assert config.sources[0].path == str(tmp_path / "crm.csv")
