"""SparkSession factory: a tuned local session, or the session a runtime (Glue) already made."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyspark.sql import SparkSession

from matcher.runtime.class_archive import driver_archive_options, start_builder
from matcher.runtime.s3 import configure_s3, connector_jars

log = logging.getLogger(__name__)

DRIVER_MEMORY = "2g"
"""The local JVM's heap unless ``MATCHER_DRIVER_MEMORY`` says otherwise. Most of it caches the
candidate vectors, which spill to disk past it: on 1,000,000 generated records (at 072de4c) a 2g heap took
264 s against 259 s with 4g (one run each), with the whole process tree at 3.98 GB instead of 5.22 GB;
on a second generated set 309 s against 297 s, at 4.12 GB instead of 5.20 GB."""


QUICK_JIT_MAX_BYTES = 8_000_000
"""Input bytes up to which a local driver's JIT compiles with its first tier only (C1,
``-XX:TieredStopAtLevel=1``). On small data the top tier (C2) spends more CPU compiling than its
code saves: on the bundled demo (0.2 MB) C2's threads took 20-43 s of CPU, and a cold run took a
median 29.3 s instead of 34.1 s; at 20,000 generated records (1.4 MB) 46.1 and 47.2 s instead of
55.0 and 59.1 s; at 100,000 (7.1 MB) 64.9 and 71.6 s instead of 68.2 and 76.9 s; at 1,000,000
(66 MB) C1's slower code took 408 s instead of 279 s. A test session (one JVM for many jobs) is
faster with C2 too (bench/README.md, "The JIT's first tier for small inputs")."""


def jit_options(input_bytes: int | None) -> str:
    """The driver's JIT options for inputs of ``input_bytes`` (``None``: unknown, so sized for any data).

    ``MATCHER_JIT=quick`` or ``full`` overrides the choice."""
    chosen = os.environ.get("MATCHER_JIT", "").strip().lower()
    if chosen not in ("quick", "full"):
        chosen = "quick" if input_bytes is not None and input_bytes <= QUICK_JIT_MAX_BYTES else "full"
    return "-XX:TieredStopAtLevel=1" if chosen == "quick" else ""


def driver_memory() -> str:
    """``MATCHER_DRIVER_MEMORY`` (a JVM size: ``4g``, ``2500m``), else :data:`DRIVER_MEMORY`."""
    return os.environ.get("MATCHER_DRIVER_MEMORY", "").strip() or DRIVER_MEMORY


def similarity_jar() -> str:
    """Path of the Spark UDF jar (Jaro-Winkler, ...) that ships inside the splink wheel."""
    from splink.backends.spark import similarity_jar_location

    return similarity_jar_location()


def _ensure_java_17() -> None:
    """Spark 3.5 supports Java 8/11/17: point JAVA_HOME at a JDK 17 when none is set."""
    if os.environ.get("JAVA_HOME"):
        return
    candidates = sorted(Path("/usr/lib/jvm").glob("*17*")) if Path("/usr/lib/jvm").is_dir() else []
    for home in candidates:
        if (home / "bin" / "java").exists():
            os.environ["JAVA_HOME"] = str(home)
            return


def _ensure_worker_python() -> None:
    """Python workers (pandas UDFs) run this interpreter, not whatever ``python3`` is on PATH.

    Without it, ``.venv/bin/matcher`` run from an un-activated shell starts workers on the
    system Python, which lacks the project's packages.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def _launcher_conf():
    """The SparkConf that ``spark-submit`` (or Glue) gave this driver, or ``None`` when Python
    started the JVM itself."""
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        return None
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # connect to the launcher's JVM, whose system properties hold its conf
    return SparkConf()


def local_session(
    *, cores: int | None = None, memory: str | None = None, app_name: str = "matcher", input_bytes: int | None = None,
) -> SparkSession:
    """A local SparkSession sized to this machine, with ``memory`` (default :func:`driver_memory`) of heap
    and the JIT :func:`jit_options` choose for ``input_bytes`` (the size of the data it will read, when known).

    Shuffle partitions and default parallelism are twice the core count (Spark's 200
    default spends most of a small job scheduling empty tasks); the UI is off; the cache of
    generated code holds what several runs compile, so that later runs in the same JVM (a
    notebook, incremental matches) reuse the compiled comparisons. Under
    ``spark-submit`` or Glue, the launcher's master and every setting it was given
    (``--conf``, ``--jars``) win over these. The JVM maps the classes it loads from an archive the first
    such session builds (:mod:`matcher.runtime.class_archive`). Once ``matcher s3-server fetch`` has fetched
    Spark's S3 connector, its jars join the classpath and ``s3://`` maps to it
    (:mod:`matcher.runtime.s3`).
    """
    _ensure_java_17()
    cores = cores or os.cpu_count() or 2
    launcher = _launcher_conf()
    if launcher is None:
        _ensure_worker_python()
    partitions = str(2 * cores)
    archive, classes = driver_archive_options(connector_jars()) if launcher is None else ("", None)
    jit = jit_options(input_bytes)
    if jit and launcher is None:
        why = "MATCHER_JIT=quick" if input_bytes is None or input_bytes > QUICK_JIT_MAX_BYTES else f"inputs of {input_bytes:,} bytes"
        log.info("the JVM compiles with its JIT's first tier only (%s; MATCHER_JIT=full turns that off)", why)
    settings = {
        "spark.master": f"local[{cores}]",
        "spark.app.name": app_name,
        "spark.driver.memory": memory or driver_memory(),
        "spark.sql.shuffle.partitions": partitions,
        "spark.default.parallelism": partitions,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.adaptive.enabled": "true",
        # coalescing small shuffles into one partition leaves a core idle on the CPU-heavy comparisons
        "spark.sql.adaptive.coalescePartitions.enabled": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # standardizing cleans each distinct value of an Arrow batch once (names, cities and dates repeat):
        # with 50,000 rows a batch instead of 10,000 it took 7.6-7.8 s instead of 9.2 s (warm, in one
        # process) on 1,000,000 generated records (bench/README.md, "Dates parsed by their own source")
        "spark.sql.execution.arrow.maxRecordsPerBatch": "50000",
        # the in-memory cache of the standardized rows, uncompressed: building it took 10 s of 37 s
        # (cold) when compressed, at 1,000,000 generated records (bench/README.md, "Names cleaned once")
        "spark.sql.inMemoryColumnarStorage.compressed": "false",
        # one run compiles about 190 classes (comparisons, u sample, scoring, evaluation); with
        # Spark's default of 100 the next run in this JVM compiles them all again, and the JIT
        # then recompiles the comparison loops (about a second of a core each)
        "spark.sql.codegen.cache.maxEntries": "1000",
        # HotSpot leaves a method of over 8,000 bytes of bytecode to its interpreter, and Spark's generated
        # scoring code crosses that with a few more comparison levels: scoring the generated 1M set's pairs
        # took 113-136 s instead of 37 s after one dependence group gained three levels (35-43 s with this)
        # the throughput collector: G1's concurrent marking takes a core from two; on 1,000,000 generated
        # records training took 103 s instead of 117 s and matching 60 s instead of 67 s, the JVM 3.06 GB
        # instead of 3.16 GB (one run each); batch work does not mind its longer pauses.
        # TrimNativeHeapInterval (JDK 17.0.9 on; an older JVM ignores it) hands memory that native code
        # freed back to the system every 5 s: glibc keeps it otherwise. At 1,000,000 generated records the
        # JVM peaked at 2.84-2.97 GB instead of 3.05-3.08 GB, the whole process tree 0.23-0.46 GB lower
        # (bench/README.md, "Native memory handed back"), no slower
        # and the class archive's option (matcher.runtime.class_archive) and the JIT's (jit_options)
        "spark.driver.extraJavaOptions": " ".join([
            "-Dlog4j2.level=WARN -XX:-DontCompileHugeMethods -XX:+UseParallelGC",
            "-XX:+IgnoreUnrecognizedVMOptions -XX:TrimNativeHeapInterval=5000", archive, jit,
        ]).strip(),
        "spark.executor.extraJavaOptions": "-XX:-DontCompileHugeMethods",  # a cluster's executors score there
        "spark.jars": similarity_jar(),
    }
    if connector_jars():  # on the JVM's own classpath: spark.jars would copy the 280 MB SDK at every start
        settings["spark.driver.extraClassPath"] = ":".join(connector_jars())
    builder = SparkSession.builder
    for key, value in settings.items():
        if launcher is None or not launcher.contains(key):
            builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    if classes is not None:
        start_builder(spark, classes)
    if launcher is None and connector_jars():
        configure_s3(spark)
    return spark


def get_session(*, checkpoint_dir: str | Path | None = None, **local_options) -> SparkSession:
    """The active session (Glue, Jupyter, spark-submit) with the jar added, else a new local one.

    A JVM launched by ``spark-submit`` or Glue fixes the driver's classpath before our
    code runs, so there the jar is added with ``ADD JAR`` instead of ``spark.jars``.
    ``checkpoint_dir`` is where Splink writes its intermediate Parquet tables; it lives
    inside the run's output folder so a run cleans up after itself.
    """
    spark = SparkSession.getActiveSession()
    launched_by_jvm = "PYSPARK_GATEWAY_PORT" in os.environ
    if spark is None:
        spark = local_session(**local_options)
    if launched_by_jvm or similarity_jar() not in spark.conf.get("spark.jars", ""):
        log.debug("adding Splink's similarity jar with ADD JAR")
        spark.sql(f"ADD JAR '{similarity_jar()}'")
    # dates before 1582 (historical records) are written as they are, in the proleptic calendar
    for mode in ("datetimeRebaseModeInWrite", "datetimeRebaseModeInRead", "int96RebaseModeInWrite", "int96RebaseModeInRead"):
        spark.conf.set(f"spark.sql.parquet.{mode}", "CORRECTED")
    # a date that is not yyyy-MM-dd (2020-5-1, 2020-02-30) compares as null instead of failing the job
    spark.conf.set("spark.sql.legacy.timeParserPolicy", "CORRECTED")
    if checkpoint_dir is not None:
        spark.sparkContext.setCheckpointDir(str(checkpoint_dir))
    return spark


def broadcasts_allowed(spark: SparkSession) -> bool:
    """Whether the session lets a join broadcast its small side (``spark.sql.autoBroadcastJoinThreshold`` is not -1)."""
    return spark.conf.get("spark.sql.autoBroadcastJoinThreshold").strip() != "-1"


@contextmanager
def session_conf(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """The SQL ``settings`` in force for the queries run inside the block, the session's own after it."""
    before = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            spark.conf.unset(key) if value is None else spark.conf.set(key, value)


def shuffle_partitions(spark: SparkSession, partitions: int):
    """``spark.sql.shuffle.partitions`` set to ``partitions`` for the queries run inside the block."""
    return session_conf(spark, {"spark.sql.shuffle.partitions": str(partitions)})
