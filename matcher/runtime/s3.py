"""``s3://`` on any Spark: Hadoop's S3A connector, set up from the environment.

Glue maps ``s3://`` to EMRFS and needs nothing from here. Elsewhere (local Spark, Jupyter,
``spark-submit``) ``s3://`` and ``s3a://`` are both mapped to Hadoop's ``S3AFileSystem``, from the
``hadoop-aws`` jar matching the Hadoop inside pyspark (``configs/s3/pom.xml``), which
``matcher s3-server fetch`` copies from Maven Central into ``.s3/lib``. A local session puts
those jars on its classpath whenever they are there.

The environment says where and who:

- ``MATCHER_S3_ENDPOINT``: an S3-compatible endpoint (``http://127.0.0.1:8333`` for
  ``matcher s3-server``); unset means Amazon S3 itself;
- ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``): the keys; unset,
  S3A's own chain (instance profile, ...) decides;
- ``MATCHER_S3_SSE_KMS_KEY``: write every object with SSE-KMS under that key (ARN or id).

Any other ``fs.s3a.*`` option passes through Spark as ``spark.hadoop.fs.s3a.*``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path, PurePosixPath
from typing import IO, Any, Mapping

from pyspark.sql import SparkSession

REPO = Path(__file__).resolve().parents[2]
CONNECTOR_POM = REPO / "configs" / "s3" / "pom.xml"
CONNECTOR_LIB = REPO / ".s3" / "lib"
S3A = "org.apache.hadoop.fs.s3a.S3AFileSystem"


def connector_jars(lib: Path = CONNECTOR_LIB) -> list[str]:
    """The S3A connector's jars when ``matcher s3-server fetch`` has fetched them, else none."""
    if not (lib / ".complete").exists():
        return []
    return sorted(str(jar) for jar in lib.glob("*.jar"))


def fetch_connector() -> Path:
    """Fetch ``hadoop-aws`` and the AWS SDK it was built with into :data:`CONNECTOR_LIB` (once)."""
    from matcher.runtime.errors import ConfigError
    from matcher.runtime.local_service import maven_fetch

    return maven_fetch(CONNECTOR_POM, CONNECTOR_LIB, "Spark's S3 connector (hadoop-aws)", ConfigError)


def s3a_settings(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The Hadoop settings that map ``s3://`` to S3A and point it where ``env`` (default: the
    process environment) says."""
    env = os.environ if env is None else env
    settings = {"fs.s3.impl": S3A, "fs.s3a.impl": S3A}
    endpoint = env.get("MATCHER_S3_ENDPOINT")
    if endpoint:
        settings |= {
            "fs.s3a.endpoint": endpoint,
            # a local server has no per-bucket host names
            "fs.s3a.path.style.access": "true",
            "fs.s3a.connection.ssl.enabled": str(endpoint.startswith("https://")).lower(),
            # fail in seconds, not after S3A's default twenty retries, when nothing answers
            "fs.s3a.attempts.maximum": "3",
            "fs.s3a.retry.limit": "3",
        }
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        settings |= {"fs.s3a.access.key": env["AWS_ACCESS_KEY_ID"], "fs.s3a.secret.key": env["AWS_SECRET_ACCESS_KEY"]}
        if env.get("AWS_SESSION_TOKEN"):
            settings |= {
                "fs.s3a.session.token": env["AWS_SESSION_TOKEN"],
                "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider",
            }
    if env.get("MATCHER_S3_SSE_KMS_KEY"):
        settings |= {"fs.s3a.encryption.algorithm": "SSE-KMS", "fs.s3a.encryption.key": env["MATCHER_S3_SSE_KMS_KEY"]}
    return settings


def configure_s3(spark: SparkSession, env: Mapping[str, str] | None = None) -> None:
    """Apply :func:`s3a_settings` to ``spark``'s Hadoop configuration. Hadoop keeps one file system
    per bucket once used: settings changed later reach only buckets not used yet."""
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    for key, value in s3a_settings(env).items():
        conf.set(key, value)


def bucket_and_key(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` (or ``s3a://``) as ``("bucket", "some/key")``."""
    bucket, _, key = uri.split("://", 1)[1].partition("/")
    return bucket, key.strip("/")


def s3_client(spark: SparkSession, bucket: str):
    """A botocore S3 client that reaches ``bucket`` as Spark's S3A does: endpoint, path style and keys
    from the Hadoop settings (per-bucket ones first), else botocore's own chain (on Glue: the job's role)."""
    from botocore.config import Config
    from botocore.session import get_session

    def setting(name: str) -> str | None:
        return _setting(spark, bucket, name)

    endpoint = setting("endpoint")
    if endpoint and "://" not in endpoint:
        endpoint = f"{'https' if setting('connection.ssl.enabled') != 'false' else 'http'}://{endpoint}"
    options = {"endpoint_url": endpoint, "region_name": setting("endpoint.region") or os.environ.get("AWS_REGION") or "us-east-1"}
    if setting("access.key") and setting("secret.key"):
        options |= {"aws_access_key_id": setting("access.key"), "aws_secret_access_key": setting("secret.key"),
                    "aws_session_token": setting("session.token")}
    style = "path" if setting("path.style.access") == "true" else "auto"
    return get_session().create_client("s3", config=Config(s3={"addressing_style": style}, retries={"max_attempts": 3}), **options)


def _setting(spark: SparkSession, bucket: str, name: str) -> str | None:
    """S3A's setting ``fs.s3a.NAME`` for ``bucket``: its per-bucket value first."""
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    return conf.get(f"fs.s3a.bucket.{bucket}.{name}") or conf.get(f"fs.s3a.{name}")


def sse_arguments(spark: SparkSession, bucket: str) -> dict[str, str]:
    """The server-side encryption arguments of a botocore ``put_object`` to ``bucket``, from the S3A
    settings Spark's writes use (``fs.s3a.encryption.algorithm`` SSE-KMS or SSE-S3, ``.key``)."""
    algorithm = (_setting(spark, bucket, "encryption.algorithm") or "").upper()
    if algorithm == "SSE-KMS":
        key = _setting(spark, bucket, "encryption.key")
        return {"ServerSideEncryption": "aws:kms", **({"SSEKMSKeyId": key} if key else {})}
    if algorithm == "SSE-S3":
        return {"ServerSideEncryption": "AES256"}
    return {}


class S3File:
    """An S3 object opened as a stream, like :meth:`pathlib.Path.open` (a remote CSV's pre-scan)."""

    def __init__(self, uri: str, client: Any) -> None:
        self.uri, self.client = uri, client
        self.bucket, self.key = bucket_and_key(uri)

    def __str__(self) -> str:
        return self.uri

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.key).suffix

    def open(self, mode: str = "r", encoding: str | None = None, errors: str | None = None, newline: str | None = None) -> IO:
        body = io.BufferedReader(self.client.get_object(Bucket=self.bucket, Key=self.key)["Body"])
        return body if "b" in mode else io.TextIOWrapper(body, encoding=encoding, errors=errors, newline=newline)


def s3_files(spark: SparkSession, uri: str) -> list[S3File]:
    """The objects Spark reads for ``uri``: the object itself, or those under the prefix whose
    path below it has no part starting with ``.`` or ``_``; none for a scheme other than S3."""
    if uri.split("://", 1)[0] not in ("s3", "s3a"):
        return []
    bucket, key = bucket_and_key(uri)
    client = s3_client(spark, bucket)
    scheme = uri.split("://", 1)[0]
    found = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
        for item in page.get("Contents", []):
            below = item["Key"][len(key):].strip("/")
            if item["Key"] == key or (item["Key"].startswith(key + "/") and below
                                      and not any(part.startswith((".", "_")) for part in below.split("/"))):
                found.append(S3File(f"{scheme}://{bucket}/{item['Key']}", client))
    return sorted(found, key=str)
