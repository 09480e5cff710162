"""Finding, checking, trimming and loading the backbone's weights.

Resolution order (docs/PROTOCOL.md): an explicit file, ``NST_WEIGHTS``, the engine's own trimmed copy
in its user data folder (the active one: the last imported or downloaded), torchvision's hub cache,
then a first-use download that keeps only the feature tensors the engine uses (61 MB of VGG-19's
548 MB). Every file is read with ``torch.load(weights_only=True)``: a weights file can hold tensors,
never code.

An imported file is recognised, not assumed: a known file by its sha256, any other by its layout,
and its preprocessing is never guessed (a file that does not say needs ``--weights-format``).
"""

import hashlib
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Optional

import platformdirs

from ..errors import BadInput, WeightsMissing

RANDOM = "random"
APP_NAME = "nst-core"
META_KEY = "nst_meta"

# The one source of these addresses: the installer keeps a copy (it cannot import this module), and
# tests/installer/test_installer.py checks that the two agree.
DOWNLOADS = {
    "vgg19": ("https://download.pytorch.org/models/vgg19-dcbb9e9d.pth", "vgg19-dcbb9e9d.pth"),
    "vgg16": ("https://download.pytorch.org/models/vgg16-397923af.pth", "vgg16-397923af.pth"),
}
FORMATS = ("torchvision", "caffe")
ACTIVE_RECORD = "active.json"  # in the weights folder: which copy the engine uses when not told


@dataclass(frozen=True)
class KnownFile:
    """A weights file recognised by its sha256 (or the prefix its publisher puts in its name)."""

    sha256: str
    architecture: str
    preprocessing: str
    description: str


# torchvision names its files after the first 8 hex digits of their sha256 (torch.hub checks them);
# the others are files seen here, by their whole sha256. Hashes of files not seen are not listed.
KNOWN_FILES = tuple(
    KnownFile(filename.split("-")[1].split(".")[0], arch, "torchvision",
              f"torchvision's ImageNet {arch.upper()} ({filename})")
    for arch, (_url, filename) in DOWNLOADS.items()
) + (
    KnownFile("d2fcbc31f95784dfee883d634eb84ff7939219231b6a7b835610783e0508a894", "vgg16", "caffe",
              "the Keras/Caffe ImageNet VGG-16 converted to torchvision layout "
              "(vgg16-imagenet-caffe-features.pth)"),
)
# The deepest layer any preset uses (relu5_2); the trimmed copy keeps everything up to it.
TRIM_LAYER = "relu5_2"


def data_dir():
    """The engine's own folder (``NST_DATA_DIR`` overrides the platform's user data folder)."""
    return os.environ.get("NST_DATA_DIR") or platformdirs.user_data_dir(APP_NAME, appauthor=False)


def weights_dir():
    return os.path.join(data_dir(), "weights")


def trimmed_path(architecture, preprocessing="torchvision"):
    return os.path.join(weights_dir(), f"{architecture}-{preprocessing}-features.pth")


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
    why: str = ""  # why this copy among several, where there was a choice

    def describe(self):
        if self.kind == RANDOM:
            return f"{self.architecture}, random (untrained: for tests only)"
        why = f": {self.why}" if self.why else ""
        return f"{self.architecture}, {self.preprocessing} preprocessing, {self.path} ({self.origin}{why})"


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


def offline_advice(architecture):
    """How to get weights onto a machine without internet; the installer's advice says the same."""
    url, filename = DOWNLOADS[architecture]
    return (f"Offline: get {filename} ({url}) elsewhere, then run `nst-core weights import FILE` or set "
            f"NST_WEIGHTS=FILE; a file the engine does not recognise (another conversion, e.g. a Caffe one) "
            f"also needs --weights-format caffe|torchvision, and --backbone vgg16|vgg19 to insist on a network.")


def _installed_note():
    copies = installed_copies()
    if not copies:
        return ""
    in_use = default_copy()
    listed = "; ".join(f"{c.architecture} ({c.preprocessing}) {c.path}"
                       + (", which the engine uses by default" if in_use and in_use.path == c.path else "")
                       for c in copies)
    return f" Already installed: {listed}."


def _missing_message(architecture, reason, preprocessing=None, fetching=False):
    preprocessing = preprocessing or "torchvision"
    option = "" if preprocessing == "torchvision" else f" --weights-format {preprocessing}"
    advice = offline_advice(architecture)
    if option:
        advice = advice.replace("`nst-core weights import FILE`", f"`nst-core weights import FILE{option}`")
    online = ("`nst-core weights fetch` needs download.pytorch.org." if fetching
              else "With internet: run `nst-core weights fetch`.")
    return (f"no {architecture.upper()} weights found ({reason}).{_installed_note()} "
            f"{online} {advice} Expected file: "
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
        prep = preprocessing or _embedded_preprocessing(path)
        if prep is None:  # a known file says what it needs (a hash: a second for VGG-19's 548 MB)
            known = recognise(sha256(path))
            if known is not None and known.architecture == arch:
                prep = known.preprocessing
        return WeightsSource("file", arch, prep or "torchvision", path, origin)

    active = active_copy()
    if active is not None and architecture in ("auto", active.architecture) \
            and preprocessing in (None, active.preprocessing):
        return active
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


def recognise(digest):
    """The :class:`KnownFile` whose hash ``digest`` (a file's sha256) is, or None."""
    for known in KNOWN_FILES:
        if digest == known.sha256 or (len(known.sha256) < 64 and digest.startswith(known.sha256)):
            return known
    return None


def check_layout(state, architecture, path):
    """Refuse a state dict that lacks, or has misshapen, any feature tensor the engine uses."""
    from .backbone import build_features, deepest_index

    tensors = _feature_tensors(state)
    features = build_features(architecture, deepest_index(architecture, [TRIM_LAYER]))
    for index, module in enumerate(features):
        for name, expected in getattr(module, "_parameters", {}).items():
            found = tensors.get(index, {}).get(name)
            if found is None:
                raise BadInput(f"{path} is not a torchvision-layout {architecture.upper()}: it has no "
                               f"features.{index}.{name} (the engine needs VGG-16 or VGG-19 convolutions "
                               f"named features.N.weight/bias, as torchvision's vgg16()/vgg19() have them)")
            if tuple(found.shape) != tuple(expected.shape):
                raise BadInput(f"{path} does not fit {architecture.upper()}: features.{index}.{name} is "
                               f"{tuple(found.shape)}, expected {tuple(expected.shape)} (wrong --backbone?)")


def import_file(path, architecture="auto", preprocessing=None, report=None):
    """``nst-core weights import``: recognise a local file, keep its trimmed copy, make it the active one.

    A known file (by its sha256) says what it is; any other must have a usable layout and either declare
    its preprocessing (an engine copy does) or be given one: it is never assumed. The copy replaces any
    other copy of the same network. ``report`` (a callable) hears what was recognised and replaced."""
    report = report or (lambda text: None)
    path = os.path.abspath(os.path.expanduser(path))
    state = _read_state_dict(path)
    known = recognise(sha256(path))
    if known is not None:
        if architecture not in ("auto", known.architecture):
            raise BadInput(f"{path} is {known.description}, a {known.architecture.upper()}, not "
                           f"{architecture.upper()}: leave out --backbone")
        if preprocessing not in (None, known.preprocessing):
            raise BadInput(f"{path} is {known.description}, which expects {known.preprocessing} "
                           f"preprocessing, not {preprocessing}: leave out --weights-format")
        arch, prep, how = known.architecture, known.preprocessing, f"recognised as {known.description}"
    else:
        arch = sniff_architecture(state) if architecture == "auto" else architecture
        if arch is None:
            raise BadInput(f"{path} has no torchvision-layout VGG-16/19 feature tensors (features.N.weight): "
                           f"it is not a weights file the engine can use")
        check_layout(state, arch, path)
        meta = state.get(META_KEY)
        declared = meta.get("preprocessing") if isinstance(meta, dict) else None
        prep = preprocessing or declared
        if prep not in FORMATS:
            raise BadInput(f"{path} holds {arch.upper()} weights in a usable layout, but it is not a file the "
                           f"engine recognises and nothing in it says which preprocessing they were trained "
                           f"with. Say it with --weights-format torchvision (torchvision's own training: "
                           f"RGB 0..1 normalised by the ImageNet mean and std) or --weights-format caffe "
                           f"(Caffe or Keras conversions: BGR 0..255 minus the mean). A wrong one gives "
                           f"weaker results.")
        how = f"preprocessing from --weights-format {prep}" if preprocessing else "preprocessing declared by the file"
    report(f"{path}: {arch.upper()}, {prep} preprocessing ({how})")
    target = save_trimmed(state, arch, prep, f"imported from {path} ({how})")
    for replaced in _remove_other_copies(arch, target):
        report(f"replaced the earlier copy {replaced}")
    set_active(target, arch, prep, f"imported from {path}")
    return target


def _remove_other_copies(architecture, keep):
    removed = []
    for copy in installed_copies():
        if copy.architecture == architecture and os.path.abspath(copy.path) != os.path.abspath(keep):
            os.unlink(copy.path)
            removed.append(copy.path)
    return removed


def installed_copies():
    """The engine's trimmed copies in its weights folder, as :class:`WeightsSource`."""
    copies = []
    for arch in DOWNLOADS:
        for prep in FORMATS:
            path = trimmed_path(arch, prep)
            if os.path.isfile(path):
                copies.append(WeightsSource("file", arch, prep, path, "engine data folder"))
    return copies


def set_active(path, architecture, preprocessing, origin):
    """Record the copy the engine uses when not told otherwise (written whole or not at all)."""
    record = {"file": os.path.basename(path), "architecture": architecture, "preprocessing": preprocessing,
              "origin": origin}
    fd, tmp = tempfile.mkstemp(prefix=".active-", suffix=".json", dir=weights_dir())
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; it holds nothing secret
    os.replace(tmp, os.path.join(weights_dir(), ACTIVE_RECORD))


def default_copy():
    """The copy ``resolve("auto")`` takes from the data folder when not told: the active one, else the
    first in the documented order."""
    copies = installed_copies()
    return active_copy() or (copies[0] if copies else None)


def active_copy():
    """The copy the active record names, when it is still there; else None."""
    try:
        with open(os.path.join(weights_dir(), ACTIVE_RECORD), encoding="utf-8") as handle:
            record = json.load(handle)
        path = os.path.join(weights_dir(), os.path.basename(record["file"]))
        arch, prep = record["architecture"], record["preprocessing"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if arch not in DOWNLOADS or prep not in FORMATS or not os.path.isfile(path):
        return None
    return WeightsSource("file", arch, prep, path, "engine data folder",
                         f"the active copy, {record.get('origin') or 'the last one added'}")


def fetch(architecture="vgg19", quiet=False):
    """Download torchvision's ImageNet weights once and keep their trimmed copy; returns its path."""
    import torch

    target = trimmed_path(architecture)
    if os.path.isfile(target):
        return target
    cached = hub_cache_path(architecture)
    if os.path.isfile(cached):
        kept = save_trimmed(_read_state_dict(cached), architecture, "torchvision", f"trimmed from {cached}")
        set_active(kept, architecture, "torchvision", f"trimmed from {cached}")
        return kept
    url, filename = DOWNLOADS[architecture]
    try:
        # A quick look first, so an offline machine hears about it in seconds rather than at a timeout.
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=10).close()
    except (urllib.error.URLError, OSError) as exc:
        raise WeightsMissing(_missing_message(architecture, f"the download failed: {getattr(exc, 'reason', exc)}",
                                             fetching=True)) from None
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd, download = tempfile.mkstemp(prefix=f".{filename}-", dir=os.path.dirname(target))
    os.close(fd)
    try:
        if not quiet:
            print(f"downloading {url} (first use only; the engine keeps 61 MB of it)", file=sys.stderr)
        torch.hub.download_url_to_file(url, download, hash_prefix=filename.split("-")[1][:8],
                                       progress=not quiet)
        kept = save_trimmed(_read_state_dict(download), architecture, "torchvision", f"downloaded from {url}")
        set_active(kept, architecture, "torchvision", f"downloaded from {url}")
        return kept
    except (urllib.error.URLError, OSError, RuntimeError) as exc:  # RuntimeError: torch.hub's hash check
        raise WeightsMissing(_missing_message(architecture, f"the download failed: {exc}", fetching=True)) from None
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
