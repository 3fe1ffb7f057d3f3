"""immuno."""
