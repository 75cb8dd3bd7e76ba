"""The make-style pipeline: configuration, stages, the runner and the command line.

The only package that knows about both ``features`` and ``classifiers``, and about files
on disk other than the feature stores.
"""

from .api import run
from .config import Config, ConfigError, load_config
from .stages import STAGES
from .version import __version__

__all__ = ["__version__", "Config", "ConfigError", "load_config", "run", "STAGES"]
