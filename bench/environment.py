"""What every benchmark records beside its timings: the machine, the checkout, the load around a run."""

from __future__ import annotations

import os
import platform
from typing import Any

from bench.datasets import ROOT


def _java_version(java: str = "java") -> str | None:
    """The first line of ``java -version`` (for a benchmark whose JVMs live in subprocesses)."""
    import subprocess

    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stderr.splitlines() or [None])[0]


def machine(spark=None, *, java: str = "java") -> dict[str, Any]:
    """Cores, memory and versions of what the benchmark ran on (without ``spark``, Java from ``java -version``
    of the ``java`` executable given)."""
    import duckdb
    import pyspark
    import splink

    memory_gb = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    memory_gb = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "java": spark.sparkContext._jvm.java.lang.System.getProperty("java.version") if spark else _java_version(java),
        "spark": pyspark.__version__,
        "spark_master": spark.sparkContext.master if spark else None,
        "spark_shuffle_partitions": spark.conf.get("spark.sql.shuffle.partitions") if spark else None,
        "splink": splink.__version__,
        "duckdb": duckdb.__version__,
    }


def source_version() -> dict[str, Any]:
    """The git commit of the checkout, and whether ``matcher/`` or ``configs/`` had uncommitted edits."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain", "--", "matcher", "configs"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def load_average() -> list[float] | None:
    """1/5/15-minute load averages: other work on the machine shows up here."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def warm_up(spark, config) -> None:
    from bench.stock import read_spark_inputs

    for df in read_spark_inputs(spark, config):
        df.groupBy(config.primary_key).count().count()
