"""citystream streams."""
