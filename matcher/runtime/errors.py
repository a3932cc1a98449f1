"""The error hierarchy. Every message names the file, key, column or row at fault."""

from __future__ import annotations


class MatcherError(Exception):
    """Base class: the CLI prints the message on one line and exits non-zero."""


class ConfigError(MatcherError):
    """The transform configuration is missing, malformed or inconsistent."""


class InputDataError(MatcherError):
    """An input file is unreadable, empty, or violates the transform's contract."""


class ModelError(MatcherError):
    """A model artifact is missing, corrupt, or does not fit the configuration."""


class GraphError(MatcherError):
    """The graph store (Gremlin Server, Neptune) is unreachable, refuses a write, or cannot be started."""


class StorageError(MatcherError):
    """An object store (S3, the local S3 server) refuses access, cannot be reached or cannot be started."""
