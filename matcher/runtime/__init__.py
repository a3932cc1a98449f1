"""What every stage runs on: errors, logging, the Spark session, atomic outputs, run folders."""
