"""Choosing the device and estimating how many pixels fit in its memory.

The estimate is a measured cost per pixel of one forward and backward pass through the trimmed
network (``benchmarks/memory_per_pixel.py`` prints it), plus the optimiser's state, against what the
device has free now: not a guess, and re-read before every run.
"""

import psutil
import torch

# Peak bytes per working pixel of a forward + backward pass to relu5_2, float32, batch 1, measured
# with benchmarks/memory_per_pixel.py (CPU: peak RSS growth; CUDA: max_memory_allocated).
BYTES_PER_PIXEL = {"vgg19": 3400, "vgg16": 2600}
LBFGS_HISTORY = 20
# Half precision halves the activations but not the float32 image, Gram matrices or optimiser state.
HALF_PRECISION_SAVING = 0.55


def pick_device(name="auto"):
    """``auto``: CUDA, then Apple's MPS, then the CPU. A named device that is absent is an error."""
    from .errors import BadInput

    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "cuda" and not cuda:
        raise BadInput("--device cuda: no CUDA GPU is usable here (torch.cuda.is_available() is False); "
                       "use --device auto or cpu")
    if name == "mps" and not mps:
        raise BadInput("--device mps: Apple's Metal backend is not available here; use --device auto or cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise BadInput(f"unknown device {name!r}: choose auto, cpu, cuda or mps")
    return torch.device(name)


def free_bytes(device):
    """Memory the run may use on ``device`` right now."""
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
    if isinstance(error, getattr(torch, "OutOfMemoryError", ())):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def release_cached(device):
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()
