"""The make-style pipeline: configuration, stages, the runner and the command line.

The only package that knows about both ``features`` and ``classifiers``, and about files
on disk other than the feature stores.
"""

__version__ = "0.2.0"  # first, before the imports: the runner's stamps import it

from .api import run  # noqa: E402
from .config import Config, ConfigError, load_config  # noqa: E402
from .stages import STAGES  # noqa: E402

__all__ = ["__version__", "Config", "ConfigError", "load_config", "run", "STAGES"]
