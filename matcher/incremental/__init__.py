"""Incremental matching: new, updated and deleted records against a matched run."""
