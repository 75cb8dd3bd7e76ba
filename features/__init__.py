"""Images -> CNN codes: backbones and their taps, weights, image sources, extraction, the HDF5 store.

This package never imports ``classifiers``; the store (``features.store``) is the only way
codes leave it.

Names are imported from their modules on first use (PEP 562, through ``lazy_loader``), so that ``from features
import MAP`` costs no torch import: the command line answers ``status`` without torch. ``__init__.pyi`` lists
them: the one list of this package's exports, read by ``lazy_loader.attach_stub`` here and by editors and type
checkers.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
