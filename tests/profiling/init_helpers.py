"""Helpers for the ``matcher init`` tests: validate a written starting config while the schema may still
require ``blocking_rules`` and ``training``, and run the CLI without Spark."""

from __future__ import annotations

from pathlib import Path

import yaml

from matcher.cli import main
from matcher.config.transform import TransformConfig, config_from_dict
from matcher.runtime.errors import ConfigError

RULE_KEYS = ("blocking_rules: Field required", "training: Field required")


def with_rules_if_required(data: dict, where: str = "<config>") -> dict:
    """``data``, plus ``blocking_rules: [[<first column>]]`` and a minimal ``training`` only when
    validation complains about exactly those missing keys (so these tests outlive the schema change
    that makes them optional)."""
    try:
        config_from_dict(data, source=where)
        return data
    except ConfigError as err:
        problems = str(err).removeprefix(f"{where}: ").split("; ")
        if not all(p.startswith(RULE_KEYS) for p in problems):
            raise
    first = data["columns"][0]["name"]
    return {**data, "blocking_rules": [[first]],
            "training": {"deterministic_rules": [[first]], "em_blocking_rules": [[first]]}}


def load_written(path: Path) -> TransformConfig:
    """A written config validated as ``load_config`` would (relative paths against the project root for
    a file in ``configs/``, else its folder), with the rules added only if the schema still needs them."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    folder = path.resolve().parent
    base = folder.parent if folder.name == "configs" else folder
    return config_from_dict(with_rules_if_required(data, str(path)), source=str(path), base_dir=base)


def run_init(capsys, *args: str) -> tuple[int, str, str]:
    """``matcher init ARGS`` in this process: exit code, stdout, stderr."""
    capsys.readouterr()
    code = main(["--log-level", "ERROR", "init", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err
