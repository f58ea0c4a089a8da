"""citystream bench."""
