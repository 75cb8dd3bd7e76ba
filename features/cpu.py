"""What this CPU computes natively, read from its flags: the fast precisions differ by processor.

bfloat16 is fast only where the CPU multiplies it in hardware (``avx512_bf16`` or AMX),
and int8 only with VNNI (``avx512_vnni``, ``avx_vnni`` or AMX); elsewhere both are
emulated and may run slower than float32 (docs/speed.md). The heads' bfloat16 training
and int8's quantization read these answers rather than assume them.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

__all__ = ["INSTRUCTIONS", "cpu_instructions", "has_native_bfloat16", "has_vnni"]

INSTRUCTIONS = {"avx512_bf16": ("avx512_bf16",), "amx": ("amx_bf16", "amx_int8", "amx_tile"),
                "avx512_vnni": ("avx512_vnni",), "avx_vnni": ("avx_vnni",)}
"""What decides the CPU's bfloat16 and int8 speed, by the ``/proc/cpuinfo`` flags that show it."""


@cache
def cpu_instructions() -> dict[str, bool]:
    """Whether this CPU has each of ``INSTRUCTIONS`` (all False where the flags cannot be read: not Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    return {name: any(flag in flags for flag in names) for name, names in INSTRUCTIONS.items()}


def has_native_bfloat16() -> bool:
    """Whether the CPU multiplies bfloat16 in hardware (``avx512_bf16`` or AMX)."""
    found = cpu_instructions()
    return found["avx512_bf16"] or found["amx"]


def has_vnni() -> bool:
    """Whether the CPU multiplies int8 with 32-bit sums in one instruction (``avx512_vnni``, ``avx_vnni``, AMX)."""
    found = cpu_instructions()
    return found["avx512_vnni"] or found["avx_vnni"] or found["amx"]
