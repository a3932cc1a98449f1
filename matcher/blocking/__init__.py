"""Blocking: candidate record pairs and their comparison vectors."""
