"""The lock of a run folder on S3: a lease object written with conditional PUTs.

S3 has no ``flock``. ``<run>/.matcher.lock`` is created with ``If-None-Match: *``, so of two
tasks starting at once only one succeeds; it names its holder as the local lock does
(:mod:`matcher.runtime.run_lock`) and carries a lease. The holder renews the lease every third of
its length with ``If-Match`` on the version it last wrote. A killed holder stops renewing: once
its lease has run out, the next task takes the lock over with ``If-Match`` on that stale version,
so two takers cannot both win. The lock object is removed when the task ends.

``MATCHER_S3_LOCK_LEASE_S`` sets the lease (default 120 s): how long a killed task blocks the folder.
A ``file://`` run folder takes the local lock; other schemes are not locked.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

from matcher.runtime.errors import ConfigError, StorageError
from matcher.runtime.run_lock import LOCK_FILE, describe_holder, holder, run_folder_lock
from matcher.runtime.s3 import bucket_and_key, s3_client, sse_arguments
from matcher.runtime.session import get_session

log = logging.getLogger(__name__)

_held: dict[str, int] = {}
"""The remote run folders this process holds, with how many tasks (nested) hold each."""


def lease_s() -> float:
    return float(os.environ.get("MATCHER_S3_LOCK_LEASE_S", "120"))


@contextmanager
def remote_run_folder_lock(uri: str) -> Iterator[None]:
    """Hold the lock of the run folder at ``uri`` while the block runs; tasks nested in this process
    share it. A live holder elsewhere is a one-line error naming it."""
    scheme = urlparse(uri).scheme
    if scheme == "file":
        root = Path(urlparse(uri).path)
        root.mkdir(parents=True, exist_ok=True)
        with run_folder_lock(root):
            yield
        return
    if scheme not in ("s3", "s3a") or uri in _held:
        _held[uri] = _held.get(uri, 0) + 1
        try:
            yield
        finally:
            _held[uri] -= 1
            if not _held[uri]:
                del _held[uri]
        return
    lease = _Lease(uri)
    lease.acquire()
    _held[uri] = 1
    try:
        yield
    finally:
        del _held[uri]
        lease.release()


class _Lease:
    """One task's hold on ``uri``'s lock object, renewed in a background thread."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        bucket, prefix = bucket_and_key(uri)
        self.bucket, self.key = bucket, f"{prefix}/{LOCK_FILE}" if prefix else LOCK_FILE
        self.client = s3_client(get_session(), bucket)
        self.encryption = sse_arguments(get_session(), bucket)  # as Spark's writes to the bucket
        self.lease_s = lease_s()
        self.etag: str | None = None
        self.stopped = threading.Event()
        self.renewer = threading.Thread(target=self._renew, name=f"lease {uri}", daemon=True)

    def _body(self) -> bytes:
        description = json.loads(holder())
        return json.dumps({**description, "lease_s": self.lease_s, "expires": time.time() + self.lease_s}).encode()

    def _put(self, **condition: str) -> bool:
        """Write the lock under ``condition``; False when the condition no longer holds."""
        try:
            self.etag = self.client.put_object(Bucket=self.bucket, Key=self.key, Body=self._body(), **condition, **self.encryption)["ETag"]
        except self.client.exceptions.ClientError as err:
            if err.response["Error"]["Code"] in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise StorageError(f"{self.uri}: cannot write the run folder's lock ({err})") from None
        return True

    def _current(self) -> tuple[str, dict[str, Any]] | None:
        try:
            found = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except self.client.exceptions.NoSuchKey:
            return None
        try:
            return found["ETag"], json.loads(found["Body"].read())
        except ValueError:
            return found["ETag"], {}

    def acquire(self) -> None:
        if not self._put(IfNoneMatch="*"):
            current = self._current()
            if current is not None:
                etag, held = current
                if held.get("expires", 0) > time.time():
                    raise ConfigError(
                        f"{self.uri}: another matcher task is writing this run folder ({describe_holder(held)}; "
                        f"its lease ends {time.strftime('%H:%M:%S', time.localtime(held['expires']))}); "
                        "wait for it to end or choose another --output"
                    )
                log.warning("%s: taking over the lock of a task whose lease ran out (%s)", self.uri, describe_holder(held))
                taken = self._put(IfMatch=etag)
            else:
                taken = self._put(IfNoneMatch="*")
            if not taken:
                raise ConfigError(f"{self.uri}: another matcher task took this run folder's lock at the same moment; try again")
        self.renewer.start()

    def _renew(self) -> None:
        while not self.stopped.wait(self.lease_s / 3):
            try:
                renewed = self._put(IfMatch=self.etag)
            except StorageError as err:
                log.warning("could not renew the lock: %s", err)
                continue
            if not renewed:
                log.error("%s: lost the run folder's lock (another task took it over)", self.uri)
                return

    def release(self) -> None:
        """Stop renewing and remove the lock if it is still ours. Quietly: releasing runs when the
        task ends, and must not hide the task's own outcome (an unremoved lock lapses with its lease)."""
        self.stopped.set()
        self.renewer.join()
        try:
            current = self._current()
            if current is not None and current[0] == self.etag:
                self.client.delete_object(Bucket=self.bucket, Key=self.key)
        except Exception as err:  # noqa: BLE001
            log.warning("%s: could not remove the run folder's lock (it lapses in %.0f s): %s", self.uri, self.lease_s, err)
