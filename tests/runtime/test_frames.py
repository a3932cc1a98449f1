"""rows_in: a semi-join on a list of values, sent to the JVM once."""

from __future__ import annotations

from matcher.runtime.frames import rows_in


def test_rows_in_keeps_the_rows_whose_value_is_listed(spark):
    df = spark.createDataFrame([(1, "a"), (2, "b"), (3, None), (4, "a")], "n long, id string")
    assert sorted(r.n for r in rows_in(df, "id", ["a", "z"]).collect()) == [1, 4]
    assert rows_in(df, "id", []).count() == 0
    assert sorted(r.n for r in rows_in(df, "n", ["2", "3"], as_text=True).collect()) == [2, 3]
    assert rows_in(df, "id", ["a"]).columns == ["n", "id"]
