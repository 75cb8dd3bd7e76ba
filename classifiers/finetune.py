"""Fine-tuning a backbone's top block with a new head, trained on cached activation maps.

The feature store can keep a tap's whole activation map (pooling ``none``). Fine-tuning
the block above that tap (VGG16's conv5 after ``pool4``, ResNet50's ``layer4`` after
``layer3``) then trains on those maps: the frozen lower layers never run again, so an
epoch costs the top block only. ``FinetuneHead`` is a scikit-learn classifier like
``TorchHead`` and shares its training loop (``TorchClassifier``): validation split, AdamW,
early stopping, seeding from ``random_state``, a fitted model on the CPU that pickles with
its block's weights, so it loads where the backbone's weights are not to be had.
"""

from __future__ import annotations

import copy
from functools import lru_cache

import numpy as np
from sklearn.utils.validation import validate_data
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from features import ResolvedWeights, build_model, get_backbone, list_taps, resolve_weights, top_block
from features.errors import SettingError

from .heads import TorchClassifier, dense_network

__all__ = ["FinetuneHead"]


@lru_cache(maxsize=1)
def _pretrained_block(weights: ResolvedWeights, tap: str) -> nn.Module:
    """The backbone's top block after ``tap``, with ``weights``; callers train a copy.

    Kept for the next fit: building VGG16 costs seconds, mostly for the fully connected
    layers the block does not use, and a grid search fits the same block many times.
    """
    model = build_model(weights, taps=(get_backbone(weights.backbone).top,))
    return top_block(model, weights.backbone, tap)


@lru_cache(maxsize=None)
def _tap_shape(backbone: str, tap: str) -> tuple[int, ...]:
    """Shape of a tap's cached whole output (224 x 224 inputs), its width first: the channels of a
    map, the width D of ``(T, D)`` tokens, which do not depend on the input size."""
    info = list_taps(backbone, 224, [tap])[0]
    return info.shape[::-1] if getattr(info.layout, "kind", "") == "tokens" else info.shape


class _Finetuner(nn.Module):
    """The top block (when there is one), global average pooling over H, W, then the head."""

    def __init__(self, block: nn.Module | None, head: nn.Module):
        super().__init__()
        self.block = block
        self.head = head

    def forward(self, x, generator=None):
        if self.block is not None:
            x = self.block(x)
        if x.ndim == 4:
            x = x.mean(dim=(2, 3))
        return self.head(x.flatten(1), generator)


class FinetuneHead(TorchClassifier):
    """A new softmax head on a backbone's top block, both trained on cached tap activations.

    Parameters
    ----------
    backbone : str or None, default=None
        The backbone whose top block (from ``tap`` up to its ``top``, see
        ``features.backbones.top_block``) is fine-tuned. ``None``: no block, the head alone
        on the input (pooled when it is maps).
    tap : str or None, default=None
        The tap whose activation maps ``X`` holds; needed with a backbone.
    weights : str, default="random"
        The block's starting weights, as ``features.weights`` names them (``imagenet``, a
        state-dict file, ...). A file covering the convolutional layers only is enough.
    weights_seed : int, default=0
        Seed of random weights (``random``, and the layers a partial file lacks).
    hidden_units : tuple of int, default=()
        Width of each hidden layer of the head; ``()`` is a linear head.
    dropout : float, default=0.5
        Probability of zeroing each input of each layer of the head during training.
    learning_rate : float, default=1e-3
        AdamW's learning rate for the new head.
    block_learning_rate : float, default=1e-4
        AdamW's learning rate for the block: smaller, so its pre-trained features are
        adjusted rather than overwritten.
    learning_rate_schedule : {"constant", "cosine"}, default="constant"
        ``cosine`` anneals both learning rates to zero over ``max_iter`` epochs.
    label_smoothing : float, default=0.0
        Share of each target's probability spread evenly over the classes.
    warmup_epochs : int, default=1
        Epochs at the start that train the head alone, the block frozen (eval mode): the
        large gradients of a random head would otherwise disturb the block's weights.
    weight_decay : float, default=1e-4
        AdamW's decoupled weight decay, head and block.
    batch_size : int, default=64
    max_iter : int, default=30
        Maximum number of epochs, warm-up included.
    n_iter_no_change : int, default=5
        Stop after this many epochs without a lower validation loss; the weights of the
        best epoch (block and head) are kept.
    validation_fraction : float, default=0.1
        Share of the fit data held out for early stopping (stratified, and group-aware
        when ``fit`` gets ``groups``). When that cannot be carved, or it is 0, all data is
        trained on for ``max_iter`` epochs.
    train_batchnorm : bool, default=False
        Whether the block's BatchNorm layers update their running statistics while
        training. By default they stay in eval mode (their scale and shift still train):
        the statistics of small fine-tuning batches are noisier than the pre-trained ones.
    class_weight : None, "balanced" or dict, default=None
        Weights of the classes in the loss, as in scikit-learn's linear models.
    precision : {"float32", "bfloat16"}, default="float32"
        The arithmetic of training's forward and backward passes (``TorchHead``'s).
    device : str, default="auto"
        ``auto`` trains on CUDA when available, else the CPU; or ``cpu``, ``cuda:1``, ...
    random_state : int, RandomState or None, default=None
        Seeds the head's initial weights, the validation fold, batch order and dropout.

    Attributes
    ----------
    classes_ : ndarray, (n_classes,)
    n_features_in_ : int
        Channels of the input (``X.shape[1]``).
    input_shape_ : tuple of int
        Shape of one input row (``X.shape[1:]``); prediction refuses any other.
    block_ : torch.nn.Module or None
        The fine-tuned block, on the CPU, in eval mode; ``None`` without a backbone.
    network_ : torch.nn.Module, on the CPU
        The head.
    n_iter_ : int
        Epochs trained.
    best_epoch_ : int
        Epoch whose weights were kept (the last one without early stopping).
    loss_curve_, validation_loss_curve_ : list of float
        Mean training loss and validation loss of each epoch (the latter empty when no
        validation fold was carved).
    """

    _predict_batch = 256  # maps: 8192 of them could take gigabytes at once
    _data_on_device = False  # maps can be gigabytes: batches travel to the device one by one

    def __init__(
        self,
        backbone=None,
        tap=None,
        weights="random",
        weights_seed=0,
        hidden_units=(),
        dropout=0.5,
        learning_rate=1e-3,
        block_learning_rate=1e-4,
        learning_rate_schedule="constant",
        label_smoothing=0.0,
        warmup_epochs=1,
        weight_decay=1e-4,
        batch_size=64,
        max_iter=30,
        n_iter_no_change=5,
        validation_fraction=0.1,
        train_batchnorm=False,
        class_weight=None,
        precision="float32",
        device="auto",
        random_state=None,
    ):
        self.backbone = backbone
        self.tap = tap
        self.weights = weights
        self.weights_seed = weights_seed
        self.hidden_units = hidden_units
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.block_learning_rate = block_learning_rate
        self.learning_rate_schedule = learning_rate_schedule
        self.label_smoothing = label_smoothing
        self.warmup_epochs = warmup_epochs
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.n_iter_no_change = n_iter_no_change
        self.validation_fraction = validation_fraction
        self.train_batchnorm = train_batchnorm
        self.class_weight = class_weight
        self.precision = precision
        self.device = device
        self.random_state = random_state

    def fit(self, X, y, groups=None, validation_rows=None):
        """Train on activation maps ``X`` and labels ``y`` ``(n_samples,)``.

        ``X`` is ``(n_samples, channels, height, width)`` maps of the tap, float16 or
        float32 (kept in its dtype in memory; each batch becomes float32 on the device).
        Without a backbone, ``(n_samples, n_features)`` rows work too. ``groups``
        ``(n_samples,)``, optional, labels rows that are views of one image (augmented
        copies): the validation fold never shares a group with the training rows.
        ``validation_rows`` (row indices), optional: the validation fold, given instead.
        """
        self._keep(self._fit(X, y, groups, validation_rows))
        return self

    def _keep(self, network):
        self.block_, self.network_ = network.block, network.head

    def _validate_params(self):
        super()._validate_params()
        if int(self.warmup_epochs) < 0:
            raise SettingError(f"warmup_epochs = {self.warmup_epochs} must be at least 0")
        if (self.backbone is None) != (self.tap is None):
            raise SettingError(f"backbone = {self.backbone!r} and tap = {self.tap!r}: give both (the block after "
                               f"the tap is fine-tuned) or neither (the head alone)")
        if self.backbone is not None:
            get_backbone(self.backbone).node(self.tap)  # unknown names fail here, before any build

    def _validate(self, X, y="no_validation", reset=True):
        checked = validate_data(self, X, y, allow_nd=True, dtype=[np.float32, np.float16], reset=reset)
        self._check_shape(checked[0] if isinstance(checked, tuple) else checked, reset)  # (X, y) when y is given
        return checked

    def _check_shape(self, X, reset):
        """Maps of the tap (or, without a block, rows or maps) at fit; the fitted shape after."""
        if not reset:
            if X.shape[1:] != self.input_shape_:
                raise ValueError(f"X has rows of shape {X.shape[1:]}; this {type(self).__name__} was fitted "
                                 f"on rows of shape {self.input_shape_}")
            return
        if self.backbone is not None:
            expected = _tap_shape(self.backbone, self.tap)
            # the width: D of tokens (n_samples, T, D), the channels of maps
            if X.ndim != 1 + len(expected) or X.shape[-1 if X.ndim == 3 else 1] != expected[0]:
                shape = {3: f"{expected[0]}, height, width", 2: f"T, {expected[0]}"}.get(len(expected), expected[0])
                raise ValueError(
                    f"{type(self).__name__} with backbone {self.backbone!r} fine-tunes on activations of tap "
                    f"{self.tap!r} shaped (n_samples, {shape}) (cached with pooling \"none\"); "
                    f"got X of shape {X.shape}"
                )
        elif X.ndim not in (2, 4):
            raise ValueError(f"X must be rows (n_samples, n_features) or maps (n_samples, channels, height, "
                             f"width); got shape {X.shape}")
        self.input_shape_ = X.shape[1:]

    def _build(self, X, n_classes, generator):
        block, n_features = None, X.shape[1]
        if self.backbone is not None:
            weights = resolve_weights(self.backbone, self.weights, seed=self.weights_seed)
            block = copy.deepcopy(_pretrained_block(weights, self.tap))
            n_features = _tap_shape(self.backbone, get_backbone(self.backbone).top)[0]
        head = dense_network([n_features, *map(int, self.hidden_units), n_classes], self.dropout, generator,
                             self.dropout)
        return _Finetuner(block, head)

    def _parameter_groups(self, network):
        """The new head at ``learning_rate``, the pre-trained block at ``block_learning_rate``."""
        groups = [{"params": network.head.parameters()}]
        if network.block is not None:
            groups.append({"params": network.block.parameters(), "lr": self.block_learning_rate})
        return groups

    def _set_training(self, network, epoch):
        """The head trains; the block is frozen (eval mode, no gradients) during warm-up, then
        trains with its BatchNorm layers in eval mode unless ``train_batchnorm``."""
        network.train()
        if network.block is None:
            return
        tuning = epoch > self.warmup_epochs
        network.block.requires_grad_(tuning)
        if not tuning:
            network.block.eval()
        elif not self.train_batchnorm:
            for module in network.block.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()

    def _predictor(self):
        return _Finetuner(self.block_, self.network_).eval()
