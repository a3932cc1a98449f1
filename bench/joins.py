"""``python -m bench joins --out FILE.json``: the two joins of candidate generation, each as
written before and as :mod:`matcher.blocking.candidates` writes it now, side by side.

On generated records (``--records``, ids such as ``crm:C00001676``, names sharing
prefixes), in one local SparkSession set up as ``matcher run``'s, alternating in every round:

* ``blocking``: two rules of the shape automatic blocking chooses
  (``substr(l.first_name, 1, 2) = substr(r.first_name, 1, 2) AND l.email = r.email``),
  joined ``as_written`` and on ``key_columns`` (:class:`matcher.blocking.join_keys.JoinKeys`:
  the computed key added to the records once, plain columns first);
* ``pairs_to_records``: ``--pairs`` pairs joined to both their records on the records'
  ``unique_ids`` and on their ``row_numbers`` (:data:`matcher.blocking.candidates.ROW`).

Both variants of a join must find the same rows (checked; the run fails otherwise). The
JSON holds every round's seconds, the medians and their ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any, Sequence

from bench.environment import load_average, machine, source_version

RECORDS, PAIRS = "bench_joins_records", "bench_joins_pairs"

RULES = (
    "substr(l.first_name, 1, 2) = substr(r.first_name, 1, 2) AND l.email = r.email",
    "substr(l.last_name, 1, 3) = substr(r.last_name, 1, 3) AND l.phone = r.phone",
)


def _records_sql(records: int) -> str:
    prefixes = ", ".join(f"'{p}'" for p in ("Ma", "Jo", "Li", "Ro", "Da", "Sa", "Ka", "El"))
    return (
        f"select concat(element_at(array('crm', 'shop', 'loyalty'), cast(id % 3 as int) + 1), ':C', "
        f"lpad(cast(id as string), 8, '0')) as record_id, id as row_number, "
        f"concat(element_at(array({prefixes}), cast(id % 8 as int) + 1), 'x', cast(id % 3000 as string)) as first_name, "
        f"concat('Sur', cast(id % 20000 as string)) as last_name, cast(id % {max(records * 2 // 5, 1)} as string) as phone, "
        f"concat('user', cast(id % {max(records * 3 // 5, 1)} as string), '@mail.com') as email, repeat('x', 40) as address "
        f"from range({records})"
    )


def _timed(spark, sql: str) -> tuple[float, tuple]:
    started = time.perf_counter()
    row = spark.sql(sql).collect()[0]
    return time.perf_counter() - started, tuple(row)


def _side_by_side(spark, variants: dict[str, str], rounds: int) -> dict[str, Any]:
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    results: dict[str, tuple] = {}
    for _ in range(rounds):
        for name, sql in variants.items():
            took, result = _timed(spark, sql)
            seconds[name].append(round(took, 3))
            results[name] = result
    if len(set(results.values())) != 1:
        raise SystemExit(f"the variants disagree: {results}")
    first, second = variants
    medians = {name: statistics.median(s) for name, s in seconds.items()}
    return {"seconds": seconds, "median_s": medians, "result": list(results[first]),
            "ratio": round(medians[second] / medians[first], 3)}


def joins(spark, records: int, pairs: int, rounds: int) -> dict[str, Any]:
    """Both joins, both ways, ``rounds`` times, with as many shuffle partitions as candidate generation uses."""
    from matcher.blocking.candidates import compare_partitions
    from matcher.runtime.session import shuffle_partitions

    with shuffle_partitions(spark, compare_partitions(spark, records)):
        return _joins(spark, records, pairs, rounds)


def _joins(spark, records: int, pairs: int, rounds: int) -> dict[str, Any]:
    from matcher.blocking.candidates import ROW
    from matcher.blocking.join_keys import JoinKeys

    keys = JoinKeys.of(RULES)
    spark.sql(_records_sql(records)).selectExpr("*", *keys.definitions()).localCheckpoint(eager=True).createOrReplaceTempView(RECORDS)

    def blocked(condition: str) -> str:
        return f"select l.record_id, r.record_id from {RECORDS} as l join {RECORDS} as r on ({condition}) where l.record_id < r.record_id"

    def count(rule_sqls: list[str]) -> str:
        return "select count(*), sum(hash(*)) from (" + " union all ".join(blocked(c) for c in rule_sqls) + ")"

    blocking = _side_by_side(spark, {"as_written": count(list(RULES)), "key_columns": count([keys.condition(r) for r in RULES])}, rounds)
    spark.sql(
        f"select l.record_id as id_l, r.record_id as id_r, l.row_number as {ROW}_l, r.row_number as {ROW}_r "
        f"from (select id, id % {records} as a, (id * 7919 + 13) % {records} as b from range({pairs})) as p "
        f"join {RECORDS} as l on p.a = l.row_number join {RECORDS} as r on p.b = r.row_number"
    ).localCheckpoint(eager=True).createOrReplaceTempView(PAIRS)

    def to_records(on_l: str, on_r: str) -> str:
        return (f"select count(*), sum(hash(l.first_name, r.last_name)) from {PAIRS} as p "
                f"join {RECORDS} as l on {on_l} join {RECORDS} as r on {on_r}")

    to_records_runs = _side_by_side(spark, {
        "unique_ids": to_records("p.id_l = l.record_id", "p.id_r = r.record_id"),
        "row_numbers": to_records(f"p.{ROW}_l = l.row_number", f"p.{ROW}_r = r.row_number"),
    }, rounds)
    for view in (RECORDS, PAIRS):
        spark.catalog.dropTempView(view)
    return {"records": records, "pairs": pairs, "rounds": rounds, "rules": list(RULES),
            "blocking": blocking, "pairs_to_records": to_records_runs,
            "machine": machine(spark), "source": source_version(), "load_avg": load_average()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench joins", description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--pairs", type=int, default=6_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", required=True, metavar="FILE.json")
    args = parser.parse_args(argv)
    from matcher.runtime.session import local_session

    spark = local_session(app_name="bench-joins")
    try:
        report = joins(spark, args.records, args.pairs, args.rounds)
    finally:
        spark.stop()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: {"median_s": report[k]["median_s"], "ratio": report[k]["ratio"]} for k in ("blocking", "pairs_to_records")}, indent=2))
    return 0
