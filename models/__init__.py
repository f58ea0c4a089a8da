"""citystream models."""
