"""Choosing the device, the precision that is fastest on it, and how many pixels fit in its memory.

The estimate is a measured cost per pixel of one forward and backward pass through the trimmed
network (``BYTES_PER_PIXEL`` below, from ``benchmarks/speed_memory.py``), plus the optimiser's state,
against what the device has free now, re-read before every run.
"""

import functools
import os
import sys

import psutil

# The names ``--device`` and ``Stylizer(device=...)`` accept. torch is imported inside the functions
# below, so that the CLI can read these names for ``--help`` without loading it.
DEVICES = ("auto", "cpu", "cuda", "mps")

# Peak bytes per working pixel of a forward + backward pass to relu5_2, float32, batch 1, from the
# peak RSS growth that benchmarks/speed_memory.py reports, kept on the safe side (benchmarks/README.md);
# VGG-16 scaled by its activations (it lacks three full-resolution-quarter layers).
BYTES_PER_PIXEL = {"vgg19": 3400, "vgg16": 2600}
LBFGS_HISTORY = 100  # as torch's default; a shorter history reached a higher loss (benchmarks/README.md)
# Half precision halves the activations but not the float32 image, Gram matrices or optimiser state.
HALF_PRECISION_SAVING = 0.55


def prefer_passive_threads(environ=None):
    """Idle OpenMP threads sleep instead of spinning, unless the user chose otherwise.

    The CPU is shared (GIMP, another engine, a service's other work): with OpenMP's default active
    wait two engines side by side run many times slower than one alone, with the passive wait
    hardly slower (benchmarks/cpu_sharing.py; figures in benchmarks/README.md).
    The OpenMP runtime reads the variable once, when torch loads it: this must run before the first
    ``import torch`` (the CLI's entry points call it first). An explicit OMP_WAIT_POLICY is respected.
    Returns True when the setting can still take effect (torch not yet imported).
    """
    environ = os.environ if environ is None else environ
    environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return "torch" not in sys.modules


def pick_device(name="auto"):
    """``auto``: CUDA, then Apple's MPS, then the CPU. A named device that is absent is an error."""
    import torch

    from ..errors import BadInput

    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "cuda" and not cuda:
        raise BadInput("--device cuda: no CUDA GPU is usable here (torch.cuda.is_available() is False); "
                       "use --device auto or cpu")
    if name == "mps" and not mps:
        raise BadInput("--device mps: Apple's Metal backend is not available here; use --device auto or cpu")
    if name not in DEVICES:
        raise BadInput(f"unknown device {name!r}: choose {', '.join(DEVICES[:-1])} or {DEVICES[-1]}")
    return torch.device(name)


@functools.lru_cache(maxsize=None)  # asked on every forward pass; the CPU does not change
def cpu_has_native_bf16():
    """True where the CPU computes bfloat16 natively (AVX-512 BF16 or AMX), the case in which bf16
    autocast was measured faster, with the loss as low as float32's (benchmarks/README.md,
    "speed_memory.py")."""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "")
    except OSError:
        return False  # not Linux: unmeasured, so float32
    return " avx512_bf16" in flags or " amx_bf16" in flags


def autocast_dtype(device, precision):
    """The autocast dtype for ``precision`` on ``device``, or None for float32.

    ``auto`` picks bf16 only where it was measured faster (a CPU with native bf16); CUDA and MPS stay
    float32 until measured there (``--precision bf16`` or ``fp16`` opt in).
    """
    import torch

    if precision == "auto":
        return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else None
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if device.type == "cpu" and dtype is torch.float16:
        return None  # CPUs have no fast float16 convolutions
    return dtype


def free_bytes(device):
    """Memory the run may use on ``device`` right now."""
    import torch

    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return free
    # CPU and MPS (unified memory) draw on the machine's RAM.
    return psutil.virtual_memory().available


def bytes_per_pixel(architecture, optimizer, half_precision=False):
    network = BYTES_PER_PIXEL[architecture] * (HALF_PRECISION_SAVING if half_precision else 1.0)
    # Optimiser state: Adam keeps two image-sized tensors; L-BFGS two per remembered step.
    state = 2 * 12 if optimizer == "adam" else 2 * LBFGS_HISTORY * 12
    return network + state + 3 * 12  # plus the image, its gradient and the best iterate


def max_pixels(device, architecture, optimizer, fraction, half_precision=False, reserved_bytes=0):
    """The largest working area (pixels) that fits ``fraction`` of the free memory."""
    budget = free_bytes(device) * fraction - reserved_bytes
    return max(0, int(budget / bytes_per_pixel(architecture, optimizer, half_precision)))


def is_out_of_memory(error):
    import torch

    if isinstance(error, getattr(torch, "OutOfMemoryError", ())):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def release_cached(device):
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()
