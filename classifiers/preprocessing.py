"""Preprocessing of CNN codes, by name, as the first steps of a scikit-learn Pipeline.

Codes from different depths differ in scale by orders of magnitude, and ReLU codes are
sparse and heavy-tailed, so what goes in front of the classifier matters as much as the
classifier. A chain is a list of names applied in order, e.g. ``["ssqrt", "l2"]`` (the
signed square root then L2 normalisation of Perronnin et al.'s improved Fisher vectors).

=============  ===========================================================================
``standard``   zero mean, unit variance per feature (``StandardScaler``)
``l2``         each sample scaled to unit L2 norm (``Normalizer``)
``ssqrt``      signed square root of every value, ``sign(x) * sqrt(|x|)``
``pca<n>``     the first ``n`` principal components (``PCA``, whitened off), e.g. ``pca128``
=============  ===========================================================================

Every step has ``partial_fit`` or needs no fitting (``IncrementalPCA`` stands in for
``PCA`` when a chain is fitted in row blocks), so a chain can be learnt out of core.
"""

from __future__ import annotations

import re

import numpy as np

from features.errors import SettingError

__all__ = ["PREPROCESSING", "DEFAULT_PREPROCESSING", "check_preprocessing", "make_preprocessing"]

_NAMED = ("standard", "l2", "ssqrt")
PREPROCESSING = (*_NAMED, "pca<n>")
"""The step names a chain may use (``pca<n>`` with a whole number of components)."""

DEFAULT_PREPROCESSING = ("ssqrt", "standard")
"""Signed square root, then standardise. On VGG16 ImageNet codes of Fashion-MNIST (pool1 to
pool5, logreg, linsvm, svm-rbf, ridge) it beat ``standard`` alone in 16 of 20 cells, by 0.9
points on average (``benchmarks/RESULTS.md``)."""


def signed_sqrt(X: np.ndarray) -> np.ndarray:
    """``sign(X) * sqrt(|X|)``: damps the few large activations that dominate CNN codes."""
    return np.sign(X) * np.sqrt(np.abs(X))


_PCA = re.compile(r"pca([1-9]\d*)")


def _step(name: str, random_state: int, incremental: bool):
    from sklearn.decomposition import PCA, IncrementalPCA  # here: names are checked without scikit-learn
    from sklearn.preprocessing import FunctionTransformer, Normalizer, StandardScaler

    if name == "standard":
        return StandardScaler()
    if name == "l2":
        return Normalizer(norm="l2")
    if name == "ssqrt":
        return FunctionTransformer(signed_sqrt, feature_names_out="one-to-one")
    n = int(_PCA.fullmatch(name).group(1))
    return IncrementalPCA(n_components=n) if incremental else PCA(n_components=n, random_state=random_state)


def check_preprocessing(chain: list[str]) -> None:
    """Raise ``SettingError`` (a ``ValueError``) naming the first step of ``chain`` that is not a valid name."""
    for name in chain:
        if name not in _NAMED and not _PCA.fullmatch(name):
            raise SettingError(f"unknown preprocessing step {name!r}; valid steps: {', '.join(PREPROCESSING)} "
                               f"(e.g. pca128)")
    if len(set(chain)) < len(chain):
        raise SettingError(f"preprocessing {chain} names a step twice; each step may appear once")


def make_preprocessing(chain: list[str], random_state: int = 0, incremental: bool = False) -> list[tuple]:
    """The ``(name, transformer)`` steps of ``chain``, ready for ``sklearn.pipeline.Pipeline``.

    ``incremental=True`` picks ``IncrementalPCA`` for ``pca<n>``, for fitting in row blocks.
    """
    check_preprocessing(chain)
    return [(name, _step(name, random_state, incremental)) for name in chain]
