"""Harmonization: sources onto one customer schema, standardized, quality-gated; golden records."""
