"""The arguments of an incremental run, checked: the config it supports, ``--new`` and ``--output``."""

from __future__ import annotations

from typing import Iterable, Mapping

from matcher.config.transform import TransformConfig
from matcher.runtime.errors import ConfigError
from matcher.runtime.run_folder import RunFolder


def check_arguments(config: TransformConfig, existing: RunFolder, new_path: str | Mapping[str, str], output: RunFolder) -> None:
    """Raise :class:`ConfigError` unless ``config`` can be matched incrementally with these arguments."""
    if len(config.inputs) != 1:
        raise ConfigError(f"{config.name}: match-incremental supports single-input (dedupe) and sources: configs; this one has {len(config.inputs)} inputs")
    if config.links_sources:
        raise ConfigError(
            f"{config.name}: match-incremental scores sources: configs as one de-duplicated table; "
            f"link_type {config.link_type!r} with sources needs a full 'matcher match'"
        )
    if (config.sources is not None) != isinstance(new_path, Mapping):
        raise ConfigError(f"{config.name}: --new takes SOURCE=PATH for a config with sources, a path otherwise")
    if output.root == existing.root:
        raise ConfigError(f"{output.root}: --output must be a new folder, not the existing run (it is read while the output is written)")


def new_source_paths(config: TransformConfig, values: Iterable[str]) -> dict[str, str]:
    """``SOURCE=PATH`` values (each may hold several, comma-separated) as {source: path}, for a ``sources:`` config."""
    names = [s.name for s in config.sources or []]
    paths: dict[str, str] = {}
    for item in (part.strip() for value in values for part in value.split(",") if part.strip()):
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise ConfigError(f"--new {item!r}: a config with sources needs SOURCE=PATH (sources: {', '.join(names)})")
        if name not in names:
            raise ConfigError(f"--new {item!r}: no source {name!r} in the config (sources: {', '.join(names)})")
        if name in paths:
            raise ConfigError(f"--new: source {name!r} given twice")
        paths[name] = path
    if not paths:
        raise ConfigError("--new: no SOURCE=PATH given")
    return paths
