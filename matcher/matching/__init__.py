"""Matching: scores, the threshold, clusters, stable ids, enforced links."""
