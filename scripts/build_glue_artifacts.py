"""Build what an AWS Glue 5 job needs to run matcher, into one folder to upload to S3.

    python scripts/build_glue_artifacts.py [--dist dist/glue] [--s3-prefix s3://BUCKET/matcher]

Writes into ``--dist``:

* ``matcher-<version>-py3-none-any.whl`` for ``--additional-python-modules``. Its
  ``pyspark`` requirement is removed: Glue 5 brings its own Spark 3.5 and pip must not
  install a second pyspark over it. Every other requirement stays pinned.
* Splink's Spark UDF jar (``scala-udf-similarity-*.jar``, taken from the installed splink
  wheel) for ``--extra-jars``.
* ``jobs/*.py``: the job scripts (``--script-location`` takes one of them).
* ``glue-default-arguments.json``: the job's ``DefaultArguments`` with the S3 locations
  filled in from ``--s3-prefix`` (see docs/glue.md).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GLUE_PROVIDES = ("pyspark",)


def build_wheel(dist: Path) -> Path:
    """``pip wheel`` the project (no dependencies) into ``dist``."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", tmp, str(REPO)],
            check=True,
        )
        (built,) = Path(tmp).glob("matcher-*.whl")
        target = dist / built.name
        _without_requirements(built, target, GLUE_PROVIDES)
    return target


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def _without_requirements(source: Path, target: Path, names: tuple[str, ...]) -> None:
    """Copy a wheel, dropping ``Requires-Dist`` lines for ``names`` and fixing its RECORD."""
    with zipfile.ZipFile(source) as src:
        files = {info.filename: src.read(info) for info in src.infolist()}
    metadata = next(name for name in files if name.endswith(".dist-info/METADATA"))
    record = next(name for name in files if name.endswith(".dist-info/RECORD"))
    lines = files[metadata].decode("utf-8").splitlines(keepends=True)
    dropped = tuple(f"Requires-Dist: {name}" for name in names)
    files[metadata] = "".join(line for line in lines if not line.startswith(dropped)).encode("utf-8")
    files[record] = "".join(
        f"{name},,\n" if name == record else f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files.items()
    ).encode("utf-8")
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as out:
        for name, data in files.items():
            out.writestr(name, data)


def copy_similarity_jar(dist: Path) -> Path:
    from splink.backends.spark import similarity_jar_location

    jar = Path(similarity_jar_location())
    return Path(shutil.copy2(jar, dist / jar.name))


def copy_job_scripts(dist: Path) -> list[Path]:
    (dist / "jobs").mkdir(exist_ok=True)
    return [Path(shutil.copy2(script, dist / "jobs" / script.name)) for script in sorted((REPO / "jobs").glob("*.py"))]


def default_arguments(prefix: str, wheel: Path, jar: Path) -> dict[str, str]:
    """The Glue job's DefaultArguments for artifacts uploaded under ``prefix``."""
    prefix = prefix.rstrip("/")
    return {
        "--additional-python-modules": f"{prefix}/{wheel.name}",
        "--extra-jars": f"{prefix}/{jar.name}",
        "--config": f"{prefix}/configs/transform.yaml",
        "--output": f"{prefix}/runs/transform",
        "--checkpoint-dir": f"{prefix}/checkpoints",
        "--TempDir": f"{prefix}/glue-temp",
        "--job-bookmark-option": "job-bookmark-disable",
        "--enable-metrics": "true",
        "--enable-continuous-cloudwatch-log": "true",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=REPO / "dist" / "glue", help="output folder (default dist/glue)")
    parser.add_argument("--s3-prefix", default="s3://YOUR-BUCKET/matcher", help="where the artifacts will be uploaded")
    args = parser.parse_args(argv)
    args.dist.mkdir(parents=True, exist_ok=True)
    wheel = build_wheel(args.dist)
    jar = copy_similarity_jar(args.dist)
    scripts = copy_job_scripts(args.dist)
    arguments = default_arguments(args.s3_prefix, wheel, jar)
    (args.dist / "glue-default-arguments.json").write_text(json.dumps(arguments, indent=2) + "\n", encoding="utf-8")
    print(f"wheel: {wheel}\njar: {jar}\njobs: {', '.join(p.name for p in scripts)}")
    print(f"upload: aws s3 cp --recursive {args.dist} {args.s3_prefix.rstrip('/')}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
