"""The forward pass on the device: the end of preprocessing, memory format, precision, compilation.

The weights' transform is split where the pixels stop being bytes. Workers decode,
resize and crop, and hand over ``uint8`` pixels: a quarter of float32's bytes through
shared memory, pinned memory and the bus. The float conversion and normalisation run on
the device, one batch at a time (on a GPU, off the CPU's cores). The result is the
weights' own transform bit for bit: the same operations, in the same order, on a batch.

``channels_last`` lets oneDNN (CPU) and cuDNN (GPU) pick their fastest convolutions; with
the BatchNorms folded (always), this project's 2-core CPU ran VGG16 24-27 % and ResNet50
at 224 x 224 68 % faster, ResNet50 at 64 x 64 5 % slower (``benchmarks/forward.py``);
codes change only by float rounding (~1e-6 relative), as with another thread count. ``bfloat16`` runs the network
under autocast: GPUs, and CPUs with ``avx512_bf16`` or AMX (1.8x float32 on this
project's CPU; docs/speed.md); codes 0.4-0.8 % different (part of the store's key).
``int8`` is ``features.quantize``'s. On CUDA, cuDNN's benchmark mode picks kernels for the fixed
input size once.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import torch
from PIL import Image
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms import functional

from .errors import SettingError
from .names import PRECISIONS

__all__ = ["Forward", "HostPixels", "OneBatchShape", "check_int8_device", "fold_batchnorm", "resolve_device"]


def check_int8_device(device: str) -> None:
    """Refuse ``int8`` on anything but the CPU, by name (``bfloat16`` is the GPU's fast precision)."""
    if torch.device(device).type != "cpu":
        raise SettingError(f"features.precision = \"int8\" runs on the CPU only (its kernels are oneDNN's x86 "
                           f"ones), not on {device!r}: on a GPU use precision = \"bfloat16\", or set "
                           f"features.device = \"cpu\"")


def resolve_device(name: str) -> str:
    """A device name, with ``auto`` the GPU when there is one (the command line's default)."""
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


class HostPixels:
    """The weights' transform up to the crop: a PIL image -> ``uint8`` ``(3, crop, crop)``.

    What a DataLoader worker does; ``Forward.inputs`` does the rest on the device.
    """

    def __init__(self, transform):
        self.transform = transform

    @property
    def resize_size(self) -> list[int]:
        return self.transform.resize_size

    def __call__(self, image: Image.Image) -> torch.Tensor:
        transform = self.transform
        image = functional.resize(image, transform.resize_size, interpolation=transform.interpolation,
                                  antialias=transform.antialias)
        return functional.pil_to_tensor(functional.center_crop(image, transform.crop_size))


class OneBatchShape(nn.Module):
    """``network`` (returning ``{tap: activation}``) fed batches of exactly ``batch_size``
    images: a smaller batch is padded with zeros, in its memory format, and the padding's
    rows are cut off the outputs again.

    For a compiled network, which compiles once per input shape and strides: a short last
    batch would compile a second graph (tens of seconds for a float network, 1.5 s for
    int8's), for the sake of a few images.
    """

    def __init__(self, network: nn.Module, batch_size: int):
        super().__init__()
        self.network = network
        self.batch_size = batch_size

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        blocks = []
        for block in images.split(self.batch_size):
            rows = len(block)
            if rows < self.batch_size:
                layout = torch.channels_last if block.is_contiguous(memory_format=torch.channels_last) else \
                    torch.contiguous_format
                block = torch.cat([block, block.new_zeros((self.batch_size - rows, *block.shape[1:]))]).contiguous(
                    memory_format=layout)
            blocks.append({tap: value[:rows] for tap, value in self.network(block).items()})
        return {tap: torch.cat([block[tap] for block in blocks]) for tap in blocks[0]}


def fold_batchnorm(network: fx.GraphModule) -> fx.GraphModule:
    """``network`` (in eval mode) with every BatchNorm that only follows a convolution folded
    into that convolution's weights and bias, in place.

    For inference only (the layers a training graph would need are gone). A frozen
    BatchNorm is a per-channel scale and shift, which the convolution before it can apply
    itself: one pass over the activations fewer per block (ResNet50 spent 8 % of its
    forward in BatchNorm on the CPU, MobileNetV3 a quarter). The same function up to float
    rounding. Convolutions are replaced by new modules, so parameters shared with another
    model are left alone.

    Two places hold such pairs: the graph's own nodes (ResNet's blocks), and the inside of
    the modules the graph calls whole. torchvision's feature extraction traces its own
    ``ops`` (``Conv2dNormActivation``, the block of MobileNet, EfficientNet, RegNet) as
    leaves, so their convolution and BatchNorm are two steps of a ``Sequential``.
    """
    modules = dict(network.named_modules())
    for node in list(network.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d) or len(node.args) != 1:
            continue
        conv = node.args[0]
        if not (isinstance(conv, fx.Node) and conv.op == "call_module" and isinstance(modules[conv.target], nn.Conv2d)
                and len(conv.users) == 1):
            continue
        folded = fuse_conv_bn_eval(modules[conv.target], modules[node.target])
        parent, _, name = conv.target.rpartition(".")
        setattr(network.get_submodule(parent) if parent else network, name, folded)
        node.replace_all_uses_with(conv)
        network.graph.erase_node(node)
    network.graph.lint()
    network.recompile()
    network.delete_all_unused_submodules()
    called_whole = [network.get_submodule(node.target) for node in network.graph.nodes if node.op == "call_module"]
    for sequence in {id(module): module for leaf in called_whole for module in leaf.modules()
                     if isinstance(module, nn.Sequential)}.values():  # no tap inside them: they run as one
        steps = list(sequence.named_children())
        for (name, conv), (norm_name, norm) in zip(steps, steps[1:]):
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                setattr(sequence, name, fuse_conv_bn_eval(conv, norm))
                setattr(sequence, norm_name, nn.Identity())
    return network


@dataclass(frozen=True)
class Forward:
    """The forward pass of a ``Recipe`` on a ``Runtime`` (``Runtime.forward``): the device,
    the recipe's precision and JPEG decoding, the runtime's memory format and compilation.

    ``compile`` wraps the network in ``torch.compile``: the first batches pay the
    compilation (tens of seconds), so it is worth it only for large extractions; on the
    CPU it needs a C++ compiler. ``decode_on_device``: workers only read JPEG files, and
    the device decodes, resizes and crops them (``decode_jpegs``); meant for a GPU, where
    it frees the CPU cores that decoding would take.
    """

    device: str = "cpu"
    precision: str = "float32"
    channels_last: bool = True
    compile: bool = False
    decode_on_device: bool = False

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise SettingError(f"precision = {self.precision!r} is not valid; valid: {', '.join(PRECISIONS)}")
        if self.precision == "int8":  # the int8 network itself is features.quantize's
            check_int8_device(self.device)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    @property
    def on_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def model(self, network: fx.GraphModule, batch_size: int) -> nn.Module:
        """The frozen ``network`` (a tap extractor) with its BatchNorms folded
        (``fold_batchnorm``), on the device, in the memory format, compiled if asked, for
        batches of at most ``batch_size`` images."""
        network = fold_batchnorm(network).to(self.device, memory_format=self.memory_format)
        return OneBatchShape(torch.compile(network), batch_size) if self.compile else network

    def inputs(self, pixels: torch.Tensor, transform) -> torch.Tensor:
        """``uint8`` ``(N, 3, H, W)`` pixels -> the network's normalised float input on the device."""
        pixels = pixels.to(self.device, non_blocking=True)
        images = functional.normalize(functional.convert_image_dtype(pixels, torch.float), transform.mean,
                                      transform.std)
        return images.contiguous(memory_format=self.memory_format)

    @contextlib.contextmanager
    def running(self):
        """Inference mode, autocast for ``bfloat16``, and cuDNN's benchmark mode on CUDA (restored after)."""
        benchmark = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = benchmark or self.on_cuda
        try:
            with torch.inference_mode(), torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16,
                                                        enabled=self.precision == "bfloat16"):
                yield
        finally:
            torch.backends.cudnn.benchmark = benchmark

    def decode_jpegs(self, encoded: list[torch.Tensor], transform) -> list[torch.Tensor | None]:
        """JPEG files' bytes -> ``uint8`` crops ``(3, crop, crop)`` decoded, resized and cropped
        on the device (nvJPEG on CUDA, which ignores EXIF orientation: sources send only
        upright files, ``ImageSource.encoded_jpeg``).

        The resize runs in float and is rounded back to ``uint8``, as PIL's is, so the pixels
        differ from the host path's by rounding (``decode_on_device`` is part of the store's
        key), and there is no reduced-scale decoding (``fast_decode``) on the device. None
        where the device's decoder refuses a file (CMYK, progressive on some GPUs, corrupt):
        the caller decodes those on the host, which also names a corrupt file.
        """
        with warnings.catch_warnings():  # torchvision 0.29 points to TorchCodec, not a dependency here
            warnings.filterwarnings("ignore", "The image decoding and encoding capabilities", DeprecationWarning)
            try:
                pictures = decode_jpeg(encoded, mode=ImageReadMode.RGB, device=self.device)
            except RuntimeError:  # one bad file fails the whole batch: find it
                pictures = [self._decode_one(data) for data in encoded]
        return [None if picture is None else self._crop(picture, transform) for picture in pictures]

    def _decode_one(self, data: torch.Tensor) -> torch.Tensor | None:
        try:
            return decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device)
        except RuntimeError:
            return None

    @staticmethod
    def _crop(picture: torch.Tensor, transform) -> torch.Tensor:
        image = functional.resize(picture.float(), transform.resize_size, interpolation=transform.interpolation,
                                  antialias=transform.antialias)
        return functional.center_crop(image, transform.crop_size).round_().clamp_(0, 255).to(torch.uint8)
