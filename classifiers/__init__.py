"""CNN codes -> predictions: the classifier zoo, torch heads, model selection, metrics,
persistence, the benchmark report and its review of the best model and of the data (``write_report``).

Codes are read only through ``features``' reader API (``read_codes``, ``FeatureStore``).
Names are imported from their modules on first use (PEP 562, through ``lazy_loader``), so that the zoo's names and
the settings' checks cost no scikit-learn or torch import. ``__init__.pyi`` lists them: the one list of this
package's exports, read by ``lazy_loader.attach_stub`` here and by editors and type checkers.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
