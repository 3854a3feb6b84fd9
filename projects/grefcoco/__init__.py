"""Generalized referring segmentation (gRefCOCO) as an external head plugin (see README.md)."""
