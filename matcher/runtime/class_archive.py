"""A class-data-sharing archive of the classes a local Spark driver loads, so that later JVMs start faster.

A cold ``matcher run`` loads and verifies some 16,000 classes of Spark, Hadoop and the JDK before and
while it runs its first jobs. JDK 17 can map them from an archive instead (class-data sharing): on the
bundled demo a cold run took a median 35 s instead of 42 s (bench/README.md, "JVM start from a class
archive").

The first local session with no archive lists the classes its JVM loads (``-XX:DumpLoadedClassList``)
and starts a detached builder. Once that JVM has exited, the builder runs ``java -Xshare:dump`` on the
list (about 30 s of one core, once) and moves the archive into place; later sessions map it with
``-XX:SharedArchiveFile``. The archive is named after the JVM and the classpath's jars (their sizes and
times), so another JDK, Spark or set of jars builds its own; older ones stay until ``.jvm/`` is removed.
A JVM that cannot use an archive (a different classpath, a damaged file) runs without it, silently.
Only sessions this package starts use it: under ``spark-submit`` or Glue the launcher has fixed the
JVM's options. ``MATCHER_CLASS_ARCHIVE=off`` turns it off.

Run as ``python -m matcher.runtime.class_archive JVM_PID LIST CLASSPATH ARCHIVE JAVA_HOME`` it is the builder.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

ARCHIVE_DIR = Path(__file__).resolve().parents[2] / ".jvm"
_STALE_BUILD_S = 600  # a build lock older than this belongs to a builder that died


def _java_version(java_home: Path) -> str | None:
    """``JAVA_VERSION`` of the JDK's ``release`` file, e.g. ``17.0.15``."""
    try:
        lines = (java_home / "release").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("JAVA_VERSION="):
            return line.split("=", 1)[1].strip().strip('"')
    return None


def _named(path: Path, suffix: str) -> Path:
    """The file of ``path``'s archive key with ``suffix``: ``KEY.jsa``, ``KEY.building``, ``KEY.failed``."""
    return path.with_name(path.name.split(".", 1)[0] + suffix)


def archive_key(java_home: Path, jars: list[Path]) -> str:
    """A name for the archive of this JVM (its path and version) and these jars (paths, sizes, times)."""
    digest = hashlib.sha256(f"{java_home.resolve()}:{_java_version(java_home)}".encode())
    for jar in sorted(jars):
        stat = jar.stat()
        digest.update(f"{jar}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def archive_options(java_home: Path, jars: list[Path], archive_dir: Path = ARCHIVE_DIR) -> tuple[str, Path | None]:
    """The JVM options for the driver, and the class list a builder should turn into an archive (or ``None``).

    With an archive: map it. Without one, and no build under way: list the loaded classes. Off
    (``""``, ``None``) when ``MATCHER_CLASS_ARCHIVE=off``, before JDK 17, or when the folder's path has a
    space or a quote or is not writable.
    """
    major = (_java_version(java_home) or "").split(".")[0]
    if os.environ.get("MATCHER_CLASS_ARCHIVE", "").lower() == "off" or not major.isdigit() or int(major) < 17:
        return "", None
    if any(c.isspace() or c in "'\"" for c in str(archive_dir)):  # Spark would split the option there
        return "", None
    key = archive_key(java_home, jars)
    archive = archive_dir / f"{key}.jsa"
    if archive.exists():
        return f"-XX:SharedArchiveFile={archive} -Xlog:cds=off -Xlog:cds+dynamic=off", None
    if _named(archive, ".failed").exists():  # this JVM could not build one: do not try at every start
        return "", None
    try:
        archive_dir.mkdir(parents=True, exist_ok=True)
        lock = _named(archive, ".building")
        if lock.exists() and time.time() - lock.stat().st_mtime < _STALE_BUILD_S:
            return "", None
        lock.write_text(str(os.getpid()), encoding="utf-8")
    except OSError:
        return "", None
    classes = archive_dir / f"{key}.{os.getpid()}.classes"
    return f"-XX:DumpLoadedClassList={classes}", classes


def driver_archive_options(extra_jars: list[str]) -> tuple[str, Path | None]:
    """:func:`archive_options` for a local driver on ``$JAVA_HOME`` with pyspark's jars and ``extra_jars``."""
    import pyspark

    if not os.environ.get("JAVA_HOME"):
        return "", None
    jars = [*Path(pyspark.__file__).parent.joinpath("jars").glob("*.jar"), *map(Path, extra_jars)]
    return archive_options(Path(os.environ["JAVA_HOME"]), jars)


def start_builder(spark, classes: Path) -> None:
    """Start the detached process that turns ``classes`` into the archive once ``spark``'s JVM exits."""
    lock = _named(classes, ".building")
    if not classes.exists():  # the session already existed: its JVM was started without the option
        lock.unlink(missing_ok=True)
        return
    jvm = spark.sparkContext._jvm
    pid, classpath = jvm.java.lang.ProcessHandle.current().pid(), jvm.System.getProperty("java.class.path")
    archive = _named(classes, ".jsa")
    subprocess.Popen(
        [sys.executable, "-m", __name__, str(pid), str(classes), classpath, str(archive), os.environ["JAVA_HOME"]],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def build(jvm_pid: int, classes: Path, classpath: str, archive: Path, java_home: Path) -> bool:
    """Wait for the JVM to exit, dump ``classes`` into ``archive``; remove the list and the lock either way.
    A dump that fails leaves ``KEY.failed``, and no session lists its classes for that key again."""
    lock = _named(archive, ".building")
    partial = archive.with_name(f"{archive.name}.{os.getpid()}.tmp")
    try:
        while _alive(jvm_pid):
            time.sleep(1)
        dumped = subprocess.run(
            [str(java_home / "bin" / "java"), "-Xshare:dump", f"-XX:SharedClassListFile={classes}",
             f"-XX:SharedArchiveFile={partial}", "-cp", classpath, "-Xlog:cds=off", "-Xlog:cds+dynamic=off"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900,
        )
        if dumped.returncode != 0 or not partial.exists():
            _named(archive, ".failed").write_text(f"java -Xshare:dump exited with {dumped.returncode}\n")
            return False
        os.replace(partial, archive)
        return True
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        for path in (classes, partial, lock):
            path.unlink(missing_ok=True)


if __name__ == "__main__":
    pid, class_list, path, target, home = sys.argv[1:6]
    sys.exit(0 if build(int(pid), Path(class_list), path, Path(target), Path(home)) else 1)
