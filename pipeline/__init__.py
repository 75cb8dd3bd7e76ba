"""The make-style pipeline: configuration, stages and the command line.

The only package that knows about both ``features`` and ``classifiers``, and about files
on disk other than the feature stores.
"""

from .config import Config, ConfigError, load_config
from .stages import STAGES

__all__ = ["Config", "ConfigError", "load_config", "STAGES"]
