"""Training: lambda, u by random sampling, m by EM and from labels."""
