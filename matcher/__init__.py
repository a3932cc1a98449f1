"""matcher: the portable, open successor to AWS Glue FindMatches, on Spark and Splink."""

__version__ = "0.1.0"
