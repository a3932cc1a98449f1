"""scripts/build_glue_artifacts.py builds what docs/glue.md tells you to upload."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import zipfile

import pytest
from conftest import REPO


@pytest.mark.slow
def test_build_produces_the_wheel_without_pyspark_the_splink_jar_and_the_job_scripts(tmp_path):
    dist = tmp_path / "glue"
    completed = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_glue_artifacts.py"), "--dist", str(dist), "--s3-prefix", "s3://acme/matcher/"],
        capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]

    (wheel,) = dist.glob("matcher-*-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        record = archive.read(next(n for n in names if n.endswith(".dist-info/RECORD"))).decode()
        hashes = {line.rsplit(",", 2)[0]: line.rsplit(",", 2)[1] for line in record.splitlines()}
        for name in names:  # every file listed with the hash of its (possibly rewritten) content
            if not name.endswith("RECORD"):
                digest = base64.urlsafe_b64encode(hashlib.sha256(archive.read(name)).digest()).rstrip(b"=").decode()
                assert hashes[name] == f"sha256={digest}", name
    assert "matcher/glue_job.py" in names and "matcher/evaluation/report.py" in names
    requirements = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert "Requires-Dist: splink==5.0.0" in requirements
    assert not [r for r in requirements if "pyspark" in r]
    check = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--quiet", str(wheel)],
                           capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stderr  # pip accepts the rewritten wheel

    (jar,) = dist.glob("scala-udf-similarity-*.jar")
    with zipfile.ZipFile(jar) as archive:
        assert any(name.endswith(".class") for name in archive.namelist())
    assert sorted(p.name for p in (dist / "jobs").glob("*.py")) == sorted(p.name for p in (REPO / "jobs").glob("*.py"))

    arguments = json.loads((dist / "glue-default-arguments.json").read_text())
    assert arguments["--additional-python-modules"] == f"s3://acme/matcher/{wheel.name}"
    assert arguments["--extra-jars"] == f"s3://acme/matcher/{jar.name}"
    assert arguments["--checkpoint-dir"] == "s3://acme/matcher/checkpoints"
