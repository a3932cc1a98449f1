"""The transform configuration: one validated object that flows through every stage."""
