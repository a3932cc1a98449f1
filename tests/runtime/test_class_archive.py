"""matcher.runtime.class_archive: the class-data-sharing archive local drivers start from."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from matcher.runtime.class_archive import archive_key, archive_options, build

JAVA_HOME = Path(os.environ.get("JAVA_HOME", "/usr/lib/jvm/java-17-openjdk-amd64"))
needs_jdk17 = pytest.mark.skipif(not (JAVA_HOME / "bin" / "java").exists(), reason="no JDK at JAVA_HOME")


def _jars(tmp_path: Path) -> list[Path]:
    jars = [tmp_path / "a.jar", tmp_path / "b.jar"]
    for jar in jars:
        jar.write_bytes(b"PK")
    return jars


@needs_jdk17
def test_the_first_session_lists_its_classes_the_next_ones_wait_then_map_the_archive(tmp_path, monkeypatch):
    monkeypatch.delenv("MATCHER_CLASS_ARCHIVE", raising=False)
    jars, folder = _jars(tmp_path), tmp_path / "jvm"
    options, classes = archive_options(JAVA_HOME, jars, folder)
    assert options == f"-XX:DumpLoadedClassList={classes}" and classes.parent == folder
    assert archive_options(JAVA_HOME, jars, folder) == ("", None)  # a build is under way: no second list
    (folder / f"{archive_key(JAVA_HOME, jars)}.jsa").write_bytes(b"")
    options, classes = archive_options(JAVA_HOME, jars, folder)
    assert options.startswith(f"-XX:SharedArchiveFile={folder}/") and "-Xlog:cds=off" in options and classes is None
    assert archive_options(JAVA_HOME, jars, tmp_path / "my runs") == ("", None)  # a space would split the option
    monkeypatch.setenv("MATCHER_CLASS_ARCHIVE", "off")
    assert archive_options(JAVA_HOME, jars, folder) == ("", None)


def test_another_jar_or_a_changed_jar_names_another_archive(tmp_path):
    jars = _jars(tmp_path)
    key = archive_key(JAVA_HOME, jars)
    assert archive_key(JAVA_HOME, list(reversed(jars))) == key
    assert archive_key(JAVA_HOME, jars[:1]) != key
    jars[1].write_bytes(b"PK\x03")
    assert archive_key(JAVA_HOME, jars) != key


@needs_jdk17
def test_the_builder_turns_a_jvm_s_class_list_into_an_archive_a_jvm_maps(tmp_path):
    java = str(JAVA_HOME / "bin" / "java")
    classes, archive = tmp_path / "k.1.classes", tmp_path / "k.jsa"
    listed = subprocess.Popen([java, f"-XX:DumpLoadedClassList={classes}", "-version"], stderr=subprocess.DEVNULL)
    assert listed.wait() == 0 and classes.stat().st_size > 0
    (tmp_path / "k.building").write_text("1")

    assert build(listed.pid, classes, "", archive, JAVA_HOME)
    assert archive.stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.jsa"]  # the list and the lock are gone
    mapped = subprocess.run([java, "-Xshare:on", f"-XX:SharedArchiveFile={archive}", "-version"],
                            capture_output=True, text=True)
    assert mapped.returncode == 0, mapped.stderr  # -Xshare:on fails when the archive cannot be mapped


@needs_jdk17
def test_a_failed_build_is_remembered_so_sessions_stop_listing_classes(tmp_path, monkeypatch):
    monkeypatch.delenv("MATCHER_CLASS_ARCHIVE", raising=False)
    jars, folder = _jars(tmp_path), tmp_path / "jvm"
    _, classes = archive_options(JAVA_HOME, jars, folder)
    # the JVM never wrote its list (it was started before, or died at once): java -Xshare:dump fails on it
    assert not build(os.getpid() + 2**22, classes, "", folder / f"{archive_key(JAVA_HOME, jars)}.jsa", JAVA_HOME)
    assert sorted(p.suffix for p in folder.iterdir()) == [".failed"]
    assert archive_options(JAVA_HOME, jars, folder) == ("", None)
