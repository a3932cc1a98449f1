"""The model: comparisons from the config, the Splink adapter, the trained model artifact."""
