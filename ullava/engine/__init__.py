"""Runner set-up shared by the tools (config loading, runner choice, user-facing errors)."""
