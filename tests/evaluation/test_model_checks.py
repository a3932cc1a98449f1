"""matcher.evaluation.report.model_checks: training's findings as short lines for the run report."""

from matcher.evaluation.report import model_checks


def test_model_checks_list_em_findings_recoveries_and_rejected_training_rules():
    metadata = {
        "em_sessions": [
            {"blocking_rule": "l.postcode = r.postcode", "checks": {
                "findings": [{"comparison": "surname", "problem": "else_near_one", "detail": "m of the 'else' level 0.93"}],
                "recovery": "restarted",
            }},
            {"blocking_rule": "l.dob = r.dob"},
        ],
        "setup": {"training": {"rejected": {"['city']": "weak column(s) city: mostly non-matches"}}},
    }
    lines = model_checks(metadata)
    assert any("surname" in line and "else_near_one" in line and "postcode" in line for line in lines)
    assert any("recovery: restarted" in line for line in lines)
    assert any("['city']" in line and "weak" in line for line in lines)
    assert not any("dob" in line for line in lines)
    assert model_checks({}) == []
