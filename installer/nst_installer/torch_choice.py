"""Which torch wheels fit this machine (``--torch auto|cpu|cuda|default``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Callable, Optional

from .errors import ExitCode, InstallError
from .platforms import MACOS, WINDOWS

TORCH_CHOICES = ("auto", "cpu", "cuda", "default")
PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# PyPI's Windows wheel is CPU-only, so CUDA on Windows needs PyTorch's own index. cu128 is the CUDA
# build that current drivers run and current torch releases still publish; --torch-index-url picks another.
PYTORCH_CUDA_INDEX = "https://download.pytorch.org/whl/cu128"


@dataclass(frozen=True)
class TorchSource:
    """Where pip takes torch and torchvision from."""

    variant: str  # "cpu", "cuda" or "default"
    index_url: Optional[str]  # None: pip's default index (PyPI, or whatever pip's config names)
    fallback_to_default: bool  # when index_url cannot be reached, use the default index instead
    why: str  # one line for the plan: why this choice

    def describe(self) -> str:
        where = "from " + self.index_url if self.index_url else "from PyPI (pip's default index)"
        text = "torch (%s) %s" % (self.variant, where)
        if self.index_url and self.fallback_to_default:
            text += ", or from PyPI if that cannot be reached"
        return text


def has_nvidia_gpu(which: Callable[[str], Optional[str]] = shutil.which) -> bool:
    """True when ``nvidia-smi`` is installed and lists at least one GPU (a driver without a card, or a
    card without a working driver, does not count)."""
    program = which("nvidia-smi")
    if not program:
        return False
    try:
        listing = subprocess.run([program, "-L"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return listing.returncode == 0 and b"GPU" in listing.stdout


def choose_torch_source(requested: str, platform: str, nvidia_gpu: bool,
                        index_override: Optional[str] = None) -> TorchSource:
    """The torch wheels for ``--torch REQUESTED`` on this platform (pure)."""
    if requested not in TORCH_CHOICES:
        raise InstallError(ExitCode.USAGE, "--torch must be one of: " + ", ".join(TORCH_CHOICES))
    variant = requested
    if requested == "auto":
        if platform == MACOS:
            variant = "default"
        else:
            variant = "cuda" if nvidia_gpu else "cpu"

    if variant == "cuda" and platform == MACOS:
        raise InstallError(ExitCode.USAGE, "there are no CUDA builds of torch for macOS",
                           "Use --torch auto (PyPI's wheel, which uses the GPU through MPS).")

    if index_override:
        return TorchSource(variant, index_override, True, "--torch-index-url given")
    if variant == "default":
        why = ("macOS: PyPI's wheel runs on the CPU and on Apple GPUs (MPS)" if platform == MACOS
               else "--torch default: plain PyPI wheel")
        return TorchSource("default", None, False, why)
    if variant == "cpu":
        if platform == MACOS:
            return TorchSource("cpu", None, False, "macOS: PyPI's wheel is the CPU build (plus MPS)")
        why = "no NVIDIA GPU found (nvidia-smi)" if requested == "auto" else "--torch cpu"
        return TorchSource("cpu", PYTORCH_CPU_INDEX, True, why + ": CPU wheels, far smaller than CUDA's")
    # cuda
    why = "NVIDIA GPU found (nvidia-smi)" if requested == "auto" else "--torch cuda"
    if platform == WINDOWS:
        return TorchSource("cuda", PYTORCH_CUDA_INDEX, True, why + ": PyTorch's CUDA wheels")
    return TorchSource("cuda", None, False, why + ": PyPI's Linux wheel is the CUDA build")


def index_reachable(url: str, timeout: float = 8.0) -> bool:
    """Whether a package index answers at all (any HTTP status below 500 counts: the host is there).

    A quick look first, so an offline machine hears about it in seconds, not after pip's retries."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        return os.path.isdir(urllib.request.url2pathname(parsed.path))
    request = urllib.request.Request(url.rstrip("/") + "/", method="HEAD")
    try:
        urllib.request.urlopen(request, timeout=timeout).close()
        return True
    except urllib.error.HTTPError as error:
        return error.code < 500 and error.code != 407  # 407: a proxy that wants credentials
    except (urllib.error.URLError, OSError, ValueError):
        return False
