"""Instance segmentation as an external task plugin (see README.md)."""
