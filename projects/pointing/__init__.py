"""Pointing ("point to the red circles") as an external head plugin (see README.md)."""
