"""Finding, checking, trimming and loading the backbone's weights.

Resolution order (docs/PROTOCOL.md): an explicit file, ``NST_WEIGHTS``, the engine's own trimmed copy
in its user data folder, torchvision's hub cache, then a first-use download that keeps only the
feature tensors the engine uses (61 MB of VGG-19's 548 MB). Every file is read with
``torch.load(weights_only=True)``: a weights file can hold tensors, never code.
"""

import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Optional

import platformdirs

from .errors import BadInput, WeightsMissing

RANDOM = "random"
APP_NAME = "nst-core"
META_KEY = "nst_meta"

DOWNLOADS = {
    "vgg19": ("https://download.pytorch.org/models/vgg19-dcbb9e9d.pth", "vgg19-dcbb9e9d.pth"),
    "vgg16": ("https://download.pytorch.org/models/vgg16-397923af.pth", "vgg16-397923af.pth"),
}
# The deepest layer any preset uses (relu5_2); the trimmed copy keeps everything up to it.
TRIM_LAYER = "relu5_2"


def data_dir():
    """The engine's own folder (``NST_DATA_DIR`` overrides the platform's user data folder)."""
    return os.environ.get("NST_DATA_DIR") or platformdirs.user_data_dir(APP_NAME, appauthor=False)


def trimmed_path(architecture, preprocessing="torchvision"):
    return os.path.join(data_dir(), "weights", f"{architecture}-{preprocessing}-features.pth")


def hub_cache_path(architecture):
    import torch

    return os.path.join(torch.hub.get_dir(), "checkpoints", DOWNLOADS[architecture][1])


@dataclass
class WeightsSource:
    """Where the weights come from: a file (with its preprocessing) or ``random``."""

    kind: str  # "file" or "random"
    architecture: str
    preprocessing: str
    path: Optional[str] = None
    origin: str = ""  # how it was found, for messages and ``doctor``

    def describe(self):
        if self.kind == RANDOM:
            return f"{self.architecture}, random (untrained: for tests only)"
        return f"{self.architecture}, {self.preprocessing} preprocessing, {self.path} ({self.origin})"


def _read_state_dict(path):
    import pickle

    import torch

    if not os.path.isfile(path):
        raise BadInput(f"weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise BadInput(f"weights file {path} is not a plain tensor state dict and was refused "
                       f"(it would need to run code to load): {str(exc).splitlines()[0]}") from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise BadInput(f"weights file {path} could not be read: {str(exc).splitlines()[0]}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise BadInput(f"weights file {path} holds a {type(state).__name__}, not a state dict")
    return state


def _feature_tensors(state):
    """{index: {"weight"/"bias": tensor}} from torchvision-layout keys (``features.N.weight``)."""
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == "features" and parts[1].isdigit() and parts[2] in ("weight", "bias"):
            out.setdefault(int(parts[1]), {})[parts[2]] = value
    return out


def sniff_architecture(state):
    """vgg16 or vgg19 from the shapes: index 19 is conv4_1 (256 in) in VGG-19, conv4_2 (512 in) in VGG-16."""
    tensors = _feature_tensors(state)
    if 19 in tensors and "weight" in tensors[19]:
        return "vgg19" if tensors[19]["weight"].shape[1] == 256 else "vgg16"
    return None


def load_features(source, last_index):
    """Build the trimmed ``features`` module of ``source`` and fill it with its weights."""
    import torch

    from .backbone import build_features

    features = build_features(source.architecture, last_index)
    if source.kind == RANDOM:
        # A fixed seed: the untrained network is the same in every run, so tests are repeatable.
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(20200601)
        for module in features:
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                torch.nn.init.zeros_(module.bias)
        torch.random.set_rng_state(generator_state)
        return features
    state = _read_state_dict(source.path)
    tensors = _feature_tensors(state)
    for index, module in enumerate(features):
        if not isinstance(module, torch.nn.Conv2d):
            continue
        found = tensors.get(index, {})
        for name in ("weight", "bias"):
            expected = getattr(module, name)
            if name not in found:
                raise BadInput(f"weights file {source.path} has no features.{index}.{name}: it is not "
                               f"a torchvision-layout {source.architecture} (try --backbone vgg16/vgg19)")
            if tuple(found[name].shape) != tuple(expected.shape):
                raise BadInput(f"weights file {source.path} does not fit {source.architecture}: "
                               f"features.{index}.{name} is {tuple(found[name].shape)}, expected "
                               f"{tuple(expected.shape)} (wrong --backbone?)")
            with torch.no_grad():
                expected.copy_(found[name].float())
    return features


def _embedded_preprocessing(path):
    try:
        meta = _read_state_dict(path).get(META_KEY)
    except BadInput:
        return None
    return meta.get("preprocessing") if isinstance(meta, dict) else None


def _missing_message(architecture, reason, preprocessing=None):
    url, filename = DOWNLOADS[architecture]
    preprocessing = preprocessing or "torchvision"
    option = "" if preprocessing == "torchvision" else f" --weights-format {preprocessing}"
    return (f"no {architecture.upper()} weights found ({reason}). "
            f"With internet: run `nst-core weights fetch`. Offline: get {filename} ({url}) elsewhere, then "
            f"run `nst-core weights import FILE{option}` or set NST_WEIGHTS=FILE. Expected file: "
            f"{trimmed_path(architecture, preprocessing)}")


def resolve(architecture="auto", weights=None, preprocessing=None, download=True):
    """Find the weights to use, in the documented order. Returns a :class:`WeightsSource`.

    ``architecture`` may be ``auto``: VGG-19 where its weights are at hand, else a local VGG-16,
    else VGG-19 by download. ``preprocessing`` None means: what the file declares, else torchvision.
    """
    explicit = weights if weights is not None else os.environ.get("NST_WEIGHTS") or None
    if preprocessing is None:
        preprocessing = os.environ.get("NST_WEIGHTS_FORMAT") or None
    origin = "--weights" if weights is not None else "NST_WEIGHTS"
    if explicit is not None:
        if explicit == RANDOM:
            return WeightsSource(RANDOM, "vgg19" if architecture == "auto" else architecture,
                                 preprocessing or "torchvision", origin=origin)
        path = os.path.abspath(os.path.expanduser(explicit))
        arch = architecture
        if arch == "auto":
            arch = sniff_architecture(_read_state_dict(path)) or "vgg19"
        return WeightsSource("file", arch, preprocessing or _embedded_preprocessing(path) or "torchvision",
                             path, origin)

    candidates = ["vgg19", "vgg16"] if architecture == "auto" else [architecture]
    for arch in candidates:
        for prep in ([preprocessing] if preprocessing else ["torchvision", "caffe"]):
            path = trimmed_path(arch, prep)
            if os.path.isfile(path):
                return WeightsSource("file", arch, prep, path, "engine data folder")
        cached = hub_cache_path(arch)
        if preprocessing in (None, "torchvision") and os.path.isfile(cached):
            return WeightsSource("file", arch, "torchvision", cached, "torchvision cache")
    arch = "vgg19" if architecture == "auto" else architecture
    if preprocessing not in (None, "torchvision"):
        # Only torchvision's own weights can be downloaded; Caffe-format ones must be imported.
        raise WeightsMissing(_missing_message(arch, f"{preprocessing}-format weights are never downloaded",
                                              preprocessing))
    if offline():
        raise WeightsMissing(_missing_message(arch, "NST_OFFLINE is set, so nothing is downloaded"))
    if not download:
        raise WeightsMissing(_missing_message(arch, "not in any of the places searched"))
    return WeightsSource("file", arch, "torchvision", fetch(arch), "downloaded")


def save_trimmed(state, architecture, preprocessing, origin):
    """Keep only the feature tensors up to relu5_2, with a note of their preprocessing."""
    import torch

    from .backbone import deepest_index

    last = deepest_index(architecture, [TRIM_LAYER])
    tensors = _feature_tensors(state)
    kept = {f"features.{i}.{name}": t.float().contiguous()
            for i, pair in tensors.items() if i <= last for name, t in pair.items()}
    if not kept:
        raise BadInput("the weights file holds no torchvision-layout feature tensors (features.N.weight)")
    kept[META_KEY] = {"architecture": architecture, "preprocessing": preprocessing, "origin": origin}
    target = trimmed_path(architecture, preprocessing)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="weights-", suffix=".pth.partial", dir=os.path.dirname(target))
    os.close(fd)
    try:
        torch.save(kept, tmp)
        # Check that what was written loads and fits before it replaces anything.
        load_features(WeightsSource("file", architecture, preprocessing, tmp), last)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def import_file(path, architecture="auto", preprocessing="torchvision"):
    """``nst-core weights import``: check a local file and keep its trimmed copy."""
    path = os.path.abspath(os.path.expanduser(path))
    state = _read_state_dict(path)
    arch = sniff_architecture(state) if architecture == "auto" else architecture
    if arch is None:
        raise BadInput(f"cannot tell whether {path} is VGG-16 or VGG-19: pass --backbone")
    return save_trimmed(state, arch, preprocessing, f"imported from {path}")


def fetch(architecture="vgg19", quiet=False):
    """Download torchvision's ImageNet weights once and keep their trimmed copy; returns its path."""
    import torch

    target = trimmed_path(architecture)
    if os.path.isfile(target):
        return target
    cached = hub_cache_path(architecture)
    if os.path.isfile(cached):
        return save_trimmed(_read_state_dict(cached), architecture, "torchvision", f"trimmed from {cached}")
    url, filename = DOWNLOADS[architecture]
    try:
        # A quick look first, so an offline machine hears about it in seconds rather than at a timeout.
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=10).close()
    except (urllib.error.URLError, OSError) as exc:
        raise WeightsMissing(_missing_message(architecture, f"the download failed: {getattr(exc, 'reason', exc)}")) from None
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd, download = tempfile.mkstemp(prefix=f".{filename}-", dir=os.path.dirname(target))
    os.close(fd)
    try:
        if not quiet:
            print(f"downloading {url} (first use only; the engine keeps 61 MB of it)", file=sys.stderr)
        torch.hub.download_url_to_file(url, download, hash_prefix=filename.split("-")[1][:8],
                                       progress=not quiet)
        return save_trimmed(_read_state_dict(download), architecture, "torchvision", f"downloaded from {url}")
    except (urllib.error.URLError, OSError, RuntimeError) as exc:  # RuntimeError: torch.hub's hash check
        raise WeightsMissing(_missing_message(architecture, f"the download failed: {exc}")) from None
    finally:
        if os.path.exists(download):
            os.unlink(download)


def offline():
    """NST_OFFLINE set to anything but empty, 0, false or no: never download."""
    return os.environ.get("NST_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
