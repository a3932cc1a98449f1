"""Helpers for the ``matcher init`` tests: load a written starting config and run the CLI without Spark."""

from __future__ import annotations

from pathlib import Path

import yaml

from matcher.cli import main
from matcher.config.transform import TransformConfig, config_from_dict


def load_written(path: Path) -> TransformConfig:
    """A written config validated as ``load_config`` would (relative paths against the project root for
    a file in ``configs/``, else its folder)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    folder = path.resolve().parent
    base = folder.parent if folder.name == "configs" else folder
    return config_from_dict(data, source=str(path), base_dir=base)


def run_init(capsys, *args: str) -> tuple[int, str, str]:
    """``matcher init ARGS`` in this process: exit code, stdout, stderr."""
    capsys.readouterr()
    code = main(["--log-level", "ERROR", "init", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err
