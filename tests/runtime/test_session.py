"""The session factory: Splink's jar, sizing, and settings real customer data needs."""

from __future__ import annotations

import pytest
from pyspark.errors import IllegalArgumentException
from pyspark.sql import functions as F

from matcher.runtime.session import QUICK_JIT_MAX_BYTES, jit_options, similarity_jar


def test_dates_before_the_gregorian_switch_round_trip_through_parquet(spark, tmp_path):
    # historical records (e.g. historical_50k) carry dates before 1582, which Spark refuses by default
    df = spark.createDataFrame([("1066-10-14",), ("0050-01-01",)], "d string").select(F.to_date("d").alias("d"))
    df.write.parquet(str(tmp_path / "dates"))
    back = sorted(str(r.d) for r in spark.read.parquet(str(tmp_path / "dates")).collect())
    assert back == ["0050-01-01", "1066-10-14"]


def test_splinks_similarity_functions_are_registered(spark):
    assert similarity_jar().endswith(".jar")
    from splink import SparkAPI

    SparkAPI(spark_session=spark)  # registers the UDFs from the jar
    row = spark.sql("select jaro_winkler('martha', 'marhta') as s").first()
    assert 0.95 < row.s < 0.97


def test_local_sessions_size_shuffles_to_the_machine(spark):
    assert int(spark.conf.get("spark.sql.shuffle.partitions")) == 4  # two per core on the 2-core test session
    assert spark.conf.get("spark.ui.enabled") == "false"


def test_python_workers_run_the_driver_s_interpreter_not_python3_on_path(spark):
    # pandas UDFs (standardization) need the project's packages: the system python3 lacks them
    import sys

    worker = spark.sparkContext.parallelize([0], 1).map(lambda _: __import__("sys").executable).first()
    assert worker == sys.executable


def test_a_date_that_is_not_iso_parses_as_null_instead_of_failing_the_job(spark):
    row = spark.sql("SELECT to_date('2020-5-1', 'yyyy-MM-dd') AS short, to_date('2020-02-30', 'yyyy-MM-dd') AS impossible, "
                    "to_date('2020-05-01', 'yyyy-MM-dd') AS iso").first()
    assert row.short is None and row.impossible is None
    assert str(row.iso) == "2020-05-01"


def test_the_jvm_compiles_generated_methods_of_any_size(spark):
    # Spark's generated scoring code outgrows HotSpot's 8,000-byte limit for compiling a method:
    # interpreted, scoring the generated 1M set took 3x as long (matcher/runtime/session.py)
    arguments = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()
    assert "-XX:-DontCompileHugeMethods" in list(arguments)


def test_small_inputs_get_the_jit_s_first_tier_only_unless_matcher_jit_says_otherwise(monkeypatch):
    monkeypatch.delenv("MATCHER_JIT", raising=False)
    quick = "-XX:TieredStopAtLevel=1"
    assert jit_options(200_000) == jit_options(QUICK_JIT_MAX_BYTES) == quick
    assert jit_options(QUICK_JIT_MAX_BYTES + 1) == jit_options(None) == ""  # large, or unknown: any size may come
    monkeypatch.setenv("MATCHER_JIT", "full")
    assert jit_options(200_000) == ""
    monkeypatch.setenv("MATCHER_JIT", "quick")
    assert jit_options(None) == quick


def test_the_local_jvm_collects_garbage_for_throughput(spark):
    # batch jobs on two cores: G1's concurrent marking competes with the tasks (matcher/runtime/session.py)
    beans = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()
    assert {b.getName() for b in beans} == {"PS Scavenge", "PS MarkSweep"}


def test_the_local_jvm_trims_its_native_heap(spark):
    # memory native code frees goes back to the system (matcher/runtime/session.py); a JVM before 17.0.9 lacks the option
    jvm = spark.sparkContext._jvm
    bean = jvm.java.lang.management.ManagementFactory.getPlatformMXBean(jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean"))
    try:
        interval = bean.getVMOption("TrimNativeHeapInterval").getValue()
    except IllegalArgumentException:  # an option this JVM does not know
        pytest.skip("this JVM has no TrimNativeHeapInterval")
    assert interval == "5000"


def test_matcher_driver_memory_sets_the_local_jvm_heap_and_small_inputs_its_jit(tmp_path):
    # new JVMs (the test session's is running): MATCHER_DRIVER_MEMORY reaches -Xmx, and the default is
    # DRIVER_MEMORY; a session for small inputs compiles with the JIT's first tier only, one of unknown size does not
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    script = ("import sys; from matcher.runtime.session import local_session; "
              "s = local_session(cores=1, input_bytes=int(sys.argv[1]) if sys.argv[1] else None); jvm = s.sparkContext._jvm; "
              "print(jvm.java.lang.Runtime.getRuntime().maxMemory() // 2**20, "
              "'-XX:TieredStopAtLevel=1' in list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()))")
    started = {}
    for setting, input_bytes in (("", ""), ("1200m", "1000")):
        env = {**os.environ, "PYTHONPATH": str(REPO), "MATCHER_DRIVER_MEMORY": setting, "MATCHER_JIT": ""}
        done = subprocess.run([sys.executable, "-c", script, input_bytes], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        heap, quick = done.stdout.split()[-2:]
        started[setting] = (int(heap), quick)
    # the JVM reports a little less than -Xmx (one survivor space)
    assert 1700 < started[""][0] <= 2048 and 1000 < started["1200m"][0] <= 1200, started
    assert started[""][1] == "False" and started["1200m"][1] == "True", started
