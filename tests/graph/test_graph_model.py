"""The graph model: identifiers, ids and the elements of a cluster (pure Python)."""

from __future__ import annotations

import pytest

from matcher.graph.model import Cluster, Record, cluster_elements, identifier_key, normalize_identifier


@pytest.mark.parametrize(("label", "raw", "normalized"), [
    ("Email", "  Ann@Example.COM ", "ann@example.com"),
    ("Phone", "+44 (0)7700-900 001", "4407700900001"),
    ("Address", "ab1  2cd", "AB12CD"),
    ("Address", " 10  downing street ", "10 DOWNING STREET"),
    ("Email", "   ", None),
    ("Phone", None, None),
])
def test_identifiers_are_normalized_by_kind(label, raw, normalized):
    assert normalize_identifier(label, raw) == normalized


def test_salted_keys_are_stable_and_depend_on_the_salt_and_kind():
    key = identifier_key("Email", "a@x.com", "s1")
    assert key == identifier_key("Email", "a@x.com", "s1") and len(key) == 64
    assert key != identifier_key("Email", "a@x.com", "s2")
    assert key != identifier_key("Phone", "a@x.com", "s1")
    assert identifier_key("Email", "a@x.com", None) == "a@x.com"


def test_a_cluster_becomes_its_customer_records_identifiers_and_edges_with_derived_ids():
    cluster = Cluster("7", (Record("7", "crm", 0.9, (("Email", "A@x.com"),)), Record("9", "crm", 0.8, (("Email", "a@x.com "),))),
                      links=(("9", "7", 0.9),))
    vertices, edges = cluster_elements(cluster)
    assert [(v.id, v.label) for v in vertices] == [("customer:7", "Customer"), ("7", "SourceRecord"), ("9", "SourceRecord"), ("email:a@x.com", "Email")]
    assert vertices[0].properties == {"match_id": "7", "size": 2, "confidence": 0.8}
    assert [e.id for e in edges] == ["7|member_of|customer:7", "7|has_email|email:a@x.com", "9|member_of|customer:7",
                                     "9|has_email|email:a@x.com", "7|same_as|9"]
    assert cluster_elements(cluster) == (vertices, edges)


def test_a_golden_profile_replaces_size_and_confidence_and_nulls_are_left_out():
    cluster = Cluster("7", (Record("7", "crm", None),), profile={"match_id": "7", "first_name": "ann", "dob": None})
    vertices, _ = cluster_elements(cluster)
    assert vertices[0].properties == {"match_id": "7", "first_name": "ann"}
    assert vertices[1].properties == {"record_id": "7", "source": "crm", "match_id": "7"}


def test_same_as_edges_can_be_switched_off():
    cluster = Cluster("1", (Record("1", "a", 1.0), Record("2", "a", 1.0)), links=(("1", "2", 0.99),))
    assert [e.label for e in cluster_elements(cluster, same_as=False)[1]] == ["member_of", "member_of"]
