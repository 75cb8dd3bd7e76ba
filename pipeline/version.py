"""The package's version, apart so that the runner's stamps and log can name it without
importing ``pipeline`` (whose ``__init__`` imports the runner)."""

__version__ = "0.2.0"
