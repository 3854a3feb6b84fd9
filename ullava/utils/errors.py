"""User-facing errors: one clear line, no traceback wall."""


class UserError(Exception):
    """A mistake in user input (config, path, data); the tools print it as one line."""
