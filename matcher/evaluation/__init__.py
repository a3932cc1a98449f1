"""Evaluation: accuracy against ground truth, and the run report."""
