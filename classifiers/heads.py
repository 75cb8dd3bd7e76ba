"""Small trainable heads on cached codes (PyTorch), as real scikit-learn classifiers.

A head is a softmax classifier on the codes, linear or with hidden layers, trained with
AdamW (decoupled weight decay), dropout and early stopping on a stratified validation fold
carved from the fit data (group-aware when rows are views of fewer images). It is a
``ClassifierMixin, BaseEstimator``, so ``clone``, ``Pipeline``, ``GridSearchCV`` and
joblib treat it like any other estimator; the zoo's ``linear-head`` and ``mlp-head`` are
two settings of it. Its training loop lives in ``TorchClassifier``, which
``classifiers.finetune.FinetuneHead`` shares.

Randomness (initial weights, the validation fold, batch order, dropout masks) comes from
``random_state`` through generators owned by the fit, never from torch's global seed, so
two fits with the same ``random_state`` give the same model on the CPU (on a GPU, up to
cuDNN's own non-determinism) and fits running side by side do not disturb each other.
The fitted network is kept on the CPU: a pickled head loads on machines without a GPU.
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import NamedTuple

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import StratifiedGroupKFold, train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d, validate_data
from torch import nn

from features import resolve_device
from features.errors import SettingError
from features.cpu import has_native_bfloat16

__all__ = ["SCHEDULES", "TRAINING_PRECISIONS", "TorchHead"]

SCHEDULES = ("constant", "cosine")
"""How the learning rate moves over training (``learning_rate_schedule``)."""
TRAINING_PRECISIONS = ("float32", "bfloat16")
"""The arithmetic of training's forward and backward passes (``precision``)."""


def _device(name: str) -> torch.device:
    return torch.device(resolve_device(name))


class _Network(nn.Module):
    """Linear layers with ReLU between them; dropout on the input of each layer (at
    ``input_dropout`` on the network's input, at ``dropout`` on the hidden layers' outputs).

    Dropout draws its masks from the generator passed to ``forward``, not the global one.
    """

    def __init__(self, sizes: list[int], dropout: float, generator: torch.Generator, input_dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(n_in, n_out) for n_in, n_out in zip(sizes, sizes[1:]))
        self.dropout, self.input_dropout = dropout, input_dropout
        for layer in self.layers:  # torch's default initialisation, from our generator
            bound = 1 / np.sqrt(layer.in_features)
            nn.init.uniform_(layer.weight, -bound, bound, generator=generator)
            nn.init.uniform_(layer.bias, -bound, bound, generator=generator)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for index, layer in enumerate(self.layers):
            if index:
                x = torch.relu(x)
            rate = (self.dropout if index else self.input_dropout) if generator is not None else 0
            if rate:
                keep = 1 - rate
                x = x * (torch.rand(x.shape, generator=generator, device=x.device) < keep) / keep
            x = layer(x)
        return x


def dense_network(sizes: list[int], dropout: float, generator: torch.Generator, input_dropout: float) -> nn.Module:
    """Linear layers of ``sizes`` (input, hidden..., classes) with ReLU and dropout between
    them, initialised from ``generator``: the network of the torch heads and of a map head.

    The class stays private to this module: fitted heads pickle it by name, so renaming it
    would change every saved model's bytes.
    """
    return _Network(sizes, dropout, generator, input_dropout)


class _Training(NamedTuple):
    """What one pass of training uses: the network, its optimiser and loss, on a device."""

    network: nn.Module
    optimiser: torch.optim.Optimizer
    loss_of: nn.Module
    on_device: torch.Generator
    device: torch.device


class TorchClassifier(ClassifierMixin, BaseEstimator):
    """What the torch classifiers share: checks, validation split, training loop, prediction.

    A subclass says how its input is validated (``_validate``), which network it trains
    (``_build``) with which AdamW parameter groups (``_parameter_groups``), what each epoch
    trains (``_set_training``), how it keeps the trained network (``_keep``) and which module
    predicts (``_predictor``). It needs the parameters ``dropout``, ``hidden_units``,
    ``weight_decay``, ``learning_rate``, ``learning_rate_schedule``, ``label_smoothing``,
    ``batch_size``, ``max_iter``, ``n_iter_no_change``, ``validation_fraction``,
    ``class_weight``, ``precision``, ``device`` and ``random_state`` (see ``TorchHead``).
    """

    _predict_batch = 8192
    """Rows per forward pass when predicting or scoring the validation fold."""
    _data_on_device = True
    """Move the whole training set to the device once (codes are small), rather than batch by batch."""

    def _validate_params(self) -> None:
        """Raise ``SettingError`` on a parameter no fit could use (scikit-learn's name for the
        check that its estimators run first in ``fit``; the zoo runs it on grids early)."""
        if not self.learning_rate > 0:
            raise SettingError(f"learning_rate = {self.learning_rate} must be more than 0")
        if not self.weight_decay >= 0:
            raise SettingError(f"weight_decay = {self.weight_decay} must be at least 0")
        if not 0 <= self.dropout < 1:
            raise SettingError(f"dropout = {self.dropout} must be in [0, 1)")
        if self.learning_rate_schedule not in SCHEDULES:
            raise SettingError(f"learning_rate_schedule = {self.learning_rate_schedule!r}; valid: {', '.join(SCHEDULES)}")
        if self.precision not in TRAINING_PRECISIONS:
            raise SettingError(f"precision = {self.precision!r}; valid: {', '.join(TRAINING_PRECISIONS)}")
        if not 0 <= self.label_smoothing < 1:
            raise SettingError(f"label_smoothing = {self.label_smoothing} must be in [0, 1)")
        if not 0 <= self.validation_fraction < 1:
            raise SettingError(f"validation_fraction = {self.validation_fraction} must be in [0, 1)")
        for name in ("batch_size", "max_iter", "n_iter_no_change"):
            if int(getattr(self, name)) < 1:
                raise SettingError(f"{name} = {getattr(self, name)} must be at least 1")
        if any(int(units) < 1 for units in self.hidden_units):
            raise SettingError(f"hidden_units = {self.hidden_units} must be positive widths")

    def _validation_split(self, y: np.ndarray, seed: int, groups: np.ndarray | None = None):
        """Indices of the training and validation rows, or (all rows, None), for encoded labels ``y``.

        With ``groups`` (rows that are views of one image share a label) no group has rows
        on both sides, so augmented copies of a training image cannot flatter the
        validation loss: the first fold of a shuffled ``StratifiedGroupKFold`` with
        ``round(1 / validation_fraction)`` folds is held out.
        """
        rows = np.arange(len(y))
        n_classes = len(np.unique(y))
        if groups is not None and len(np.unique(groups)) == len(groups):
            groups = None  # one row per image: the stratified fold (a group-aware one costs 11 s at 60,000 rows)
        if groups is not None and self.validation_fraction:
            folds = StratifiedGroupKFold(round(1 / self.validation_fraction), shuffle=True, random_state=seed)
            try:
                with warnings.catch_warnings():  # about folds the user never asked for
                    warnings.simplefilter("ignore", UserWarning)
                    train_rows, val_rows = next(folds.split(rows, y, groups))
            except ValueError:  # fewer groups (or class members) than folds
                return rows, None
            return (train_rows, val_rows) if len(np.unique(y[train_rows])) == n_classes else (rows, None)
        n_val = int(np.ceil(self.validation_fraction * len(y)))
        if not self.validation_fraction or np.bincount(y).min() < 2 or not n_classes <= n_val <= len(y) - n_classes:
            return rows, None
        return train_test_split(rows, test_size=n_val, stratify=y, random_state=seed)

    def _validate(self, X, y="no_validation", reset: bool = True):
        """``validate_data`` for this estimator's input: ``X``, or ``(X, y)`` when ``y`` is given."""
        raise NotImplementedError

    def _build(self, X: np.ndarray, n_classes: int, generator: torch.Generator) -> nn.Module:
        """The network to train, initialised from ``generator``."""
        raise NotImplementedError

    def _parameter_groups(self, network: nn.Module):
        """AdamW's parameter groups of ``network`` (one group at ``learning_rate`` by default)."""
        return network.parameters()

    def _optimiser(self, network: nn.Module) -> torch.optim.AdamW:
        return torch.optim.AdamW(self._parameter_groups(network), lr=self.learning_rate,
                                 weight_decay=self.weight_decay)

    def _set_training(self, network: nn.Module, epoch: int) -> None:
        """Put ``network`` in training mode for ``epoch`` (1-based)."""
        network.train()

    def _predictor(self) -> nn.Module:
        """The fitted module mapping a float32 batch to logits."""
        raise NotImplementedError

    def _fit(self, X, y, groups=None, validation_rows=None) -> nn.Module:
        """Validate, train with early stopping and return the network (on the CPU, eval mode).

        ``validation_rows``, when given, are the rows held out for early stopping instead of
        a fold carved here (model selection passes the split every classifier is scored on).

        Sets ``classes_``, ``n_features_in_``, ``n_iter_``, ``best_epoch_``, ``loss_curve_``,
        ``validation_loss_curve_`` and ``validation_rows_`` (the held-out rows early stopping
        watched, empty when none were held out; model selection scores on them).
        """
        self._validate_params()
        self.__dict__.pop("_partial", None)  # a fit starts afresh, also after partial_fit
        X, y = self._validate(X, y)
        check_classification_targets(y)
        if groups is not None:
            groups = column_or_1d(groups)
            check_consistent_length(y, groups)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes; got 1 class")
        seed = self._seed()
        device = _device(self.device)
        self._check_precision(device)
        host = torch.Generator().manual_seed(seed)
        on_device = _device_generator(host, seed, device)

        if validation_rows is None:
            train_rows, val_rows = self._validation_split(encoded, seed, groups)
        else:
            val_rows = np.unique(np.asarray(validation_rows, dtype=np.int64))
            train_rows = np.setdiff1d(np.arange(len(encoded)), val_rows)
            if not len(train_rows) or not len(val_rows) or val_rows[-1] >= len(encoded):
                raise ValueError(f"validation_rows must name some but not all of the {len(encoded)} rows")
        self.validation_rows_ = np.sort(val_rows) if val_rows is not None else np.array([], dtype=np.int64)
        loss_of = self._loss(y, device)
        storage = device if self._data_on_device else torch.device("cpu")
        X_all = torch.from_numpy(X).to(storage)  # in its own dtype: each batch becomes float32 on the device
        y_all = torch.from_numpy(encoded).to(storage)
        network = self._build(X, len(self.classes_), host).to(device)
        optimiser = self._optimiser(network)

        self.loss_curve_, self.validation_loss_curve_ = [], []
        best_loss, best_state, self.best_epoch_ = np.inf, None, 0
        for epoch in range(1, self.max_iter + 1):
            self._set_training(network, epoch)
            self.loss_curve_.append(self._train_pass(_Training(network, optimiser, loss_of, on_device, device),
                                                     X_all, y_all, train_rows, host, epoch))
            self.n_iter_ = epoch
            if val_rows is None:
                self.best_epoch_ = epoch
                continue
            network.eval()
            rows = torch.from_numpy(val_rows).to(storage)
            logits = _batched_logits(network, X_all[rows], self._predict_batch, device)
            self.validation_loss_curve_.append(loss_of(logits, y_all[rows].to(device)).item())
            if self.validation_loss_curve_[-1] < best_loss:
                best_loss, self.best_epoch_ = self.validation_loss_curve_[-1], epoch
                best_state = copy.deepcopy(network.state_dict())
            elif epoch - self.best_epoch_ >= self.n_iter_no_change:
                break
        if best_state is not None:
            network.load_state_dict(best_state)
        return network.cpu().eval()

    def _check_precision(self, device: torch.device) -> None:
        """Refuse ``bfloat16`` on a GPU without it; warn where it is emulated (a CPU without
        ``avx512_bf16`` or AMX)."""
        if self.precision != "bfloat16":
            return
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise SettingError(f"precision = \"bfloat16\": {torch.cuda.get_device_name(device)} has no bfloat16; "
                               f"train in \"float32\" there")
        if device.type == "cpu" and not has_native_bfloat16():
            warnings.warn("precision = \"bfloat16\" on a CPU without avx512_bf16 or AMX: its matrix products are "
                          "emulated and may train slower than float32 (docs/classifiers.md, Heads)", UserWarning,
                          stacklevel=3)

    def _seed(self) -> int:
        """The fit's seed, drawn from ``random_state``; every generator of the fit starts from it."""
        return int(check_random_state(self.random_state).randint(2**31 - 1))

    def _loss(self, y: np.ndarray, device: torch.device) -> nn.CrossEntropyLoss:
        """Cross-entropy weighted by ``class_weight`` (balanced weights from the labels ``y``),
        against targets smoothed by ``label_smoothing``."""
        weights = compute_class_weight(self.class_weight, classes=self.classes_, y=y)
        return nn.CrossEntropyLoss(weight=torch.as_tensor(weights, dtype=torch.float32, device=device),
                                   label_smoothing=float(self.label_smoothing))

    def _train_pass(self, training: _Training, X, y, rows, generator, epoch: int) -> float:
        """Pass ``epoch`` (1-based) of shuffled mini-batches over ``X[rows]``; the mean training loss.

        With the ``cosine`` schedule each batch's learning rate is the initial one times
        ``(1 + cos(pi * t)) / 2``, ``t`` the share of ``max_iter`` epochs done: large steps
        first, small ones to settle at the end, which early stopping at a constant rate
        does not reach (measured in docs/classifiers.md).
        """
        network, optimiser, loss_of, on_device, device = training  # the loss and the weights stay float32
        order = torch.from_numpy(rows)[torch.randperm(len(rows), generator=generator)].to(X.device)
        batches = order.split(int(self.batch_size))
        total = 0.0
        for index, batch in enumerate(batches):
            if self.learning_rate_schedule == "cosine":
                _anneal(optimiser, (epoch - 1 + index / len(batches)) / int(self.max_iter))
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.precision == "bfloat16"):
                logits = network(X[batch].to(device, torch.float32), on_device)
            loss = loss_of(logits.float(), y[batch].to(device))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(batch)
        return total / len(rows)

    def _keep(self, network: nn.Module) -> None:
        """Keep the trained network as the fitted attributes (``network_``, ...)."""
        raise NotImplementedError

    def partial_fit(self, X, y, classes=None):
        """One pass over the rows of ``X`` and ``y``, continuing the training of earlier calls.

        For data that comes in blocks too large to hold together (``fit_in_blocks`` calls
        it once per block per epoch). ``classes``, every label there will be, is needed on
        the first call, unless ``fit`` ran before (training then goes on from its network).
        There is no validation fold and no early stopping: the caller's passes over its
        blocks are the epochs (``warmup_epochs`` counts calls, and the ``cosine`` schedule
        runs over ``max_iter`` calls: set it to the calls to come). Between calls the network and
        the optimiser's state wait on the CPU, so the estimator pickles like a fitted one.
        """
        if not hasattr(self, "_partial"):
            self._validate_params()
            if isinstance(self.class_weight, str):
                raise SettingError(f"class_weight = {self.class_weight!r} needs every label at once; give a dict of "
                                   f"weights, or use fit")
            seed = self._seed()
            generator = torch.Generator().manual_seed(seed)
            if hasattr(self, "classes_"):  # fitted: go on from there
                X, y = self._validate(X, y, reset=False)
                network = self._predictor()
            elif classes is None:
                raise ValueError("classes must be given on the first call to partial_fit (every label there will be)")
            else:
                X, y = self._validate(X, y)
                self.classes_ = np.unique(classes)
                network = self._build(X, len(self.classes_), generator)
                self.loss_curve_, self.validation_loss_curve_, self.n_iter_ = [], [], 0
            self._partial = (network, self._optimiser(network), generator)
        else:
            X, y = self._validate(X, y, reset=False)
        unknown = np.setdiff1d(y, self.classes_)
        if len(unknown):
            raise ValueError(f"y has labels {unknown.tolist()} that are not in classes {self.classes_.tolist()}")
        network, optimiser, generator = self._partial
        device = _device(self.device)
        self._check_precision(device)
        loss_of = self._loss(y, device)
        _move(network, optimiser, device)
        self.n_iter_ += 1
        self._set_training(network, self.n_iter_)
        on_device = _device_generator(generator, int(torch.randint(2**31 - 1, (1,), generator=generator)), device)
        self.loss_curve_.append(self._train_pass(_Training(network, optimiser, loss_of, on_device, device),
                                                 torch.from_numpy(X), torch.from_numpy(np.searchsorted(self.classes_, y)),
                                                 np.arange(len(y)), generator, self.n_iter_))
        _move(network, optimiser, torch.device("cpu"))
        self.best_epoch_ = self.n_iter_
        self._keep(network.eval())
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, ``(n_samples, n_classes)`` in the order of ``classes_``."""
        return torch.softmax(self._logits(X).double(), dim=1).numpy()  # sums to 1 in float64 too

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row, ``(n_samples,)``."""
        labels = self._logits(X).argmax(dim=1).numpy()
        return self.classes_[labels]

    def _logits(self, X) -> torch.Tensor:
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        return _batched_logits(self._predictor(), torch.from_numpy(X), self._predict_batch, torch.device("cpu"))


def _anneal(optimiser: torch.optim.Optimizer, progress: float) -> None:
    """Cosine annealing: every parameter group's learning rate at ``(1 + cos(pi * progress)) / 2``
    of its initial one (kept in the group as ``initial_lr``, as torch's schedulers keep it);
    ``progress`` past 1 counts as 1."""
    for group in optimiser.param_groups:
        group.setdefault("initial_lr", group["lr"])
        group["lr"] = group["initial_lr"] * (1 + math.cos(math.pi * min(progress, 1.0))) / 2


def _device_generator(host: torch.Generator, seed: int, device: torch.device) -> torch.Generator:
    """The generator of dropout masks drawn on ``device``: ``host`` itself on the CPU."""
    return host if device.type == "cpu" else torch.Generator(device).manual_seed(seed)


def _move(network: nn.Module, optimiser: torch.optim.Optimizer, device: torch.device) -> None:
    """``network`` and its optimiser's state (AdamW's moments) to ``device``, in place."""
    network.to(device)
    for state in optimiser.state.values():
        for key, value in state.items():
            if torch.is_tensor(value) and key != "step":  # AdamW keeps its step count on the CPU
                state[key] = value.to(device)


def _batched_logits(network: nn.Module, X: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    """``network``'s logits for the rows of ``X``, ``batch_size`` rows at a time, in float32."""
    with torch.inference_mode():
        return torch.cat([network(batch.to(device, torch.float32)) for batch in X.split(batch_size)])


class TorchHead(TorchClassifier):
    """A linear or MLP softmax classifier trained with PyTorch.

    Parameters
    ----------
    hidden_units : tuple of int, default=()
        Width of each hidden layer; ``()`` is a linear (multinomial logistic) head.
    dropout : float, default=0.0
        Probability of zeroing each input of each layer during training.
    input_dropout : float or None, default=None
        Probability of zeroing each input feature (the codes) during training, when it
        should differ from ``dropout`` on the hidden layers; ``None``: ``dropout``.
    weight_decay : float, default=1e-2
        AdamW's decoupled weight decay.
    learning_rate : float, default=1e-3
        AdamW's (initial) learning rate.
    learning_rate_schedule : {"constant", "cosine"}, default="constant"
        ``cosine`` anneals the learning rate to zero over ``max_iter`` epochs, batch by
        batch (``partial_fit``: over ``max_iter`` calls).
    label_smoothing : float, default=0.0
        Share of each target's probability spread evenly over the classes (torch's
        ``CrossEntropyLoss``): a head trained to be less than certain overfits less.
    batch_size : int, default=256
    max_iter : int, default=200
        Maximum number of epochs (the name scikit-learn's MLPClassifier uses).
    n_iter_no_change : int, default=10
        Stop after this many epochs without a lower validation loss; the weights of the
        best epoch are kept.
    validation_fraction : float, default=0.1
        Share of the fit data held out (stratified) for early stopping. When a class has
        too few samples for that, or it is 0, all data is trained on for ``max_iter``.
    class_weight : None, "balanced" or dict, default=None
        Weights of the classes in the loss, as in scikit-learn's linear models.
    precision : {"float32", "bfloat16"}, default="float32"
        The arithmetic of training's forward and backward passes. ``bfloat16`` autocasts
        them (the weights, their updates and the loss stay float32): faster where the
        device multiplies bfloat16 natively (GPUs from Ampere on; CPUs with ``avx512_bf16``
        or AMX), at the same accuracy in docs/classifiers.md's measurements. A GPU without
        bfloat16 is refused; a CPU without it is warned about (emulated, maybe slower).
        Predictions are float32 either way.
    device : str, default="auto"
        ``auto`` trains on CUDA when available, else the CPU; or ``cpu``, ``cuda:1``, ...
    random_state : int, RandomState or None, default=None

    Attributes
    ----------
    classes_ : ndarray, (n_classes,)
    n_features_in_ : int
    network_ : torch.nn.Module, on the CPU
    n_iter_ : int
        Epochs trained.
    best_epoch_ : int
        Epoch whose weights were kept (the last one without early stopping).
    loss_curve_, validation_loss_curve_ : list of float
        Mean training loss and validation loss of each epoch (the latter empty when no
        validation fold was carved).
    """

    def __init__(
        self,
        hidden_units=(),
        dropout=0.0,
        input_dropout=None,
        weight_decay=1e-2,
        learning_rate=1e-3,
        learning_rate_schedule="constant",
        label_smoothing=0.0,
        batch_size=256,
        max_iter=200,
        n_iter_no_change=10,
        validation_fraction=0.1,
        class_weight=None,
        precision="float32",
        device="auto",
        random_state=None,
    ):
        self.hidden_units = hidden_units
        self.dropout = dropout
        self.input_dropout = input_dropout
        self.weight_decay = weight_decay
        self.learning_rate = learning_rate
        self.learning_rate_schedule = learning_rate_schedule
        self.label_smoothing = label_smoothing
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.n_iter_no_change = n_iter_no_change
        self.validation_fraction = validation_fraction
        self.class_weight = class_weight
        self.precision = precision
        self.device = device
        self.random_state = random_state

    def fit(self, X, y, groups=None, validation_rows=None):
        """Train on ``X`` ``(n_samples, n_features)`` and labels ``y`` ``(n_samples,)``.

        ``groups`` ``(n_samples,)``, optional, labels rows that are views of one image
        (augmented copies): the validation fold then never shares a group with the
        training rows. Without it the fold is stratified by class only.
        ``validation_rows`` (row indices), optional: the validation fold, given instead.
        """
        self._keep(self._fit(X, y, groups, validation_rows))
        return self

    def _keep(self, network):
        self.network_ = network

    def _validate_params(self):
        super()._validate_params()
        if self.input_dropout is not None and not 0 <= self.input_dropout < 1:
            raise SettingError(f"input_dropout = {self.input_dropout} must be in [0, 1), or None (as dropout)")

    def _validate(self, X, y="no_validation", reset=True):
        return validate_data(self, X, y, dtype=np.float32, reset=reset)

    def _build(self, X, n_classes, generator):
        input_dropout = self.dropout if self.input_dropout is None else self.input_dropout
        return dense_network([X.shape[1], *map(int, self.hidden_units), n_classes], self.dropout, generator,
                             input_dropout)

    def _predictor(self):
        return self.network_
