"""Task plugins from outside the core; each is imported through a config's ``custom_imports``."""
