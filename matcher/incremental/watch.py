"""``matcher watch``: apply each delta file dropped into an inbox exactly once, in name order.

The local form of the event-driven loop (a file lands in S3, EventBridge starts a Glue job that
runs ``match-incremental``). The inbox is a local folder or an ``s3://`` prefix. For a config
without ``sources:`` each file directly in it is a delta; for one with sources, each file in
``INBOX/<source name>/``. Files whose name starts with ``.`` or ``_`` are ignored.

Every delta makes a new generation of the run, ``OUTPUT/000001``, ``OUTPUT/000002``, ... each a
complete run folder built on the one before (the first on ``--run``). A generation records the
file it applied in ``watch.json``, written before its ``summary.json``, which comes last: a
generation without ``summary.json`` is one a killed watcher left and is removed. The file then
moves to ``INBOX/processed/`` (a delta the matcher refuses as bad input, with its one-line reason in
``INBOX/rejected/<name>.reason.txt``, to ``INBOX/rejected/``; any other failure, such as a run
folder or store that cannot be reached, stops the watcher and leaves the file in the inbox).
A file found in the inbox that a complete generation already applied (the watcher was killed
before moving it) is moved without being applied again, so each file is applied once however
the watcher is stopped. One watcher
works on an ``OUTPUT`` at a time (the run-folder lock, held on ``OUTPUT`` itself).
A file is known by its path under the inbox: drop each delta under a new name.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from matcher.config.transform import TransformConfig
from matcher.incremental.task import match_incremental_from
from matcher.runtime.errors import ConfigError, InputDataError
from matcher.runtime.remote_folder import (
    as_uri,
    exists,
    list_entries,
    move,
    read_bytes,
    remove,
    write_text,
)
from matcher.runtime.remote_lock import remote_run_folder_lock
from matcher.runtime.run_folder import open_run_folder

log = logging.getLogger(__name__)

LEDGER = "watch.json"
PROCESSED, REJECTED = "processed", "rejected"


@dataclass(frozen=True)
class Delta:
    """One inbox file: its path under the inbox (``crm/day2.csv``) and the source it feeds, if any."""

    name: str
    source: str | None = None

    def new_path(self, inbox: str) -> str | dict[str, str]:
        uri = _local(f"{inbox}/{self.name}")
        return {self.source: uri} if self.source else uri


@dataclass(frozen=True)
class Watch:
    """The inbox, the run it starts from and where the generations go (URIs)."""

    config: TransformConfig
    run: str
    inbox: str
    output: str

    def pending(self) -> list[Delta]:
        """The inbox's delta files, in name order."""
        def files(folder: str) -> list[str]:
            return [name for name, is_folder in list_entries(folder) if not is_folder and name[0] not in "._"]

        if self.config.sources is None:
            return [Delta(name) for name in files(self.inbox)]
        return [Delta(f"{s.name}/{name}", s.name) for s in self.config.sources for name in files(f"{self.inbox}/{s.name}")]

    def generations(self) -> list[tuple[str, str]]:
        """The complete generations as (folder name, the delta it applied), oldest first; removes
        the incomplete ones a killed watcher left."""
        complete = []
        for name, is_folder in list_entries(self.output):
            if not (is_folder and name.isdigit()):
                continue
            folder = f"{self.output}/{name}"
            if exists(f"{folder}/summary.json") and exists(f"{folder}/{LEDGER}"):
                complete.append((name, json.loads(read_bytes(f"{folder}/{LEDGER}"))["delta"]))
            else:
                log.warning("removing generation %s: a stopped watcher left it incomplete", folder)
                remove(_local(folder), strict=True)
        return complete

    def apply(self, delta: Delta, previous: str, generation: str) -> dict | None:
        """Apply ``delta`` on ``previous`` into ``generation``; None when the matcher refused it."""
        try:
            with open_run_folder(_local(generation), name="watch", whole=True) as folder:
                folder.root.mkdir(parents=True, exist_ok=True)
                (folder.root / LEDGER).write_text(json.dumps({"delta": delta.name, "previous": _local(previous)}), encoding="utf-8")
                return match_incremental_from(self.config, _local(previous), delta.new_path(self.inbox), folder)
        except ConfigError:  # the run, the config or the storage, not this file: stop, the file stays in the inbox
            remove(_local(generation), strict=True)
            raise
        except InputDataError as err:
            remove(_local(generation), strict=True)
            reason = " ".join(str(err).split())
            write_text(f"{self.inbox}/{REJECTED}/{delta.name}.reason.txt", reason + "\n")
            log.error("rejected %s: %s", delta.name, reason)
            return None

    def once(self) -> dict[str, int]:
        """Apply every pending delta; how many were applied, rejected and moved after a stop."""
        counts = {"applied": 0, "rejected": 0, "recovered": 0}
        generations = self.generations()
        applied = {delta for _, delta in generations}
        for delta in self.pending():
            source = f"{self.inbox}/{delta.name}"
            if delta.name in applied:
                log.info("%s was applied before a stop; moving it to %s/", delta.name, PROCESSED)
                move(source, f"{self.inbox}/{PROCESSED}/{delta.name}")
                counts["recovered"] += 1
                continue
            number = int(generations[-1][0]) + 1 if generations else 1
            previous = f"{self.output}/{generations[-1][0]}" if generations else self.run
            generation = f"{self.output}/{number:06d}"
            result = self.apply(delta, previous, generation)
            if result is None:
                move(source, f"{self.inbox}/{REJECTED}/{delta.name}")
                counts["rejected"] += 1
                continue
            generations.append((f"{number:06d}", delta.name))
            applied.add(delta.name)
            move(source, f"{self.inbox}/{PROCESSED}/{delta.name}")
            changes = result.get("incremental", {})
            log.info("applied %s as generation %s: %s new, %s joined, %s updated", delta.name, generation,
                     changes.get("new"), changes.get("joined"), changes.get("updated"))
            counts["applied"] += 1
        return counts


def watch_task(config: TransformConfig, run: str, inbox: str, output: str | None, *, once: bool, poll_s: float) -> dict:
    """Watch ``inbox`` (apply what is there, then poll every ``poll_s`` seconds; with ``once``, stop
    when the inbox is empty); the totals and the latest generation."""
    watch = Watch(config, as_uri(run), as_uri(inbox), as_uri(output or f"{str(run).rstrip('/')}-increments"))
    if not exists(f"{watch.run}/summary.json"):
        raise InputDataError(f"{run}: no completed run here (summary.json missing); run 'matcher run' first")
    totals = {"applied": 0, "rejected": 0, "recovered": 0}
    with remote_run_folder_lock(watch.output):  # one watcher per output; a second is refused naming the first
        while True:
            for key, count in watch.once().items():
                totals[key] += count
            if once:
                break
            time.sleep(poll_s)
        generations = watch.generations()
    latest = f"{watch.output}/{generations[-1][0]}" if generations else watch.run
    return {**totals, "latest": _local(latest)}


def _local(uri: str) -> str:
    """A ``file://`` URI as its path (opened as a local run folder); other URIs as they are."""
    return str(Path(uri.removeprefix("file://"))) if uri.startswith("file://") else uri
