"""One local SparkSession for the whole test run, and small helpers to write test inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from matcher.session import get_session

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    session = get_session(checkpoint_dir=tmp_path_factory.mktemp("checkpoints"), cores=2, memory="2g")
    yield session
    session.stop()


@pytest.fixture
def write_config(tmp_path):
    """Write a config mapping as YAML under tmp_path and return its path."""

    def write(data: dict, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return path

    return write
