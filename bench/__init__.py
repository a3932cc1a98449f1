"""Benchmarks: matcher against stock Splink on Spark and DuckDB (see bench/README.md)."""
