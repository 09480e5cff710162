"""Weights: resolution order, trimming, safety and the offline message."""

import os
import time
import urllib.error

import pytest
import torch

from nst_core import BadInput, WeightsMissing
from nst_core import weights as W
from nst_core.backbone import build_features, deepest_index, layer_names


def save_full_features(path, architecture="vgg16", seed=0):
    """A torchvision-layout state dict of a whole VGG ``features`` (as torchvision ships it, minus the classifier)."""
    torch.manual_seed(seed)
    features = build_features(architecture, len(layer_names(architecture)) * 2)  # all of it
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # ignored
    torch.save(state, path)
    return state


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    monkeypatch.setenv("NST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("NST_WEIGHTS", raising=False)
    monkeypatch.delenv("NST_WEIGHTS_FORMAT", raising=False)
    return tmp_path


def test_layer_names_match_torchvision_indices():
    vgg19, vgg16 = layer_names("vgg19"), layer_names("vgg16")
    assert [vgg19[n] for n in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1", "relu5_2")] == [1, 6, 11, 20, 29, 31]
    assert [vgg16[n] for n in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1", "relu5_2")] == [1, 6, 11, 18, 20, 25, 27]
    with pytest.raises(BadInput, match="unknown vgg19 layer"):
        deepest_index("vgg19", ["relu9_1"])


def test_explicit_file_loads_exactly_and_architecture_is_sniffed(clean_env):
    path = clean_env / "v16.pth"
    state = save_full_features(path, "vgg16")
    source = W.resolve("auto", str(path), "caffe")
    assert (source.architecture, source.preprocessing, source.origin) == ("vgg16", "caffe", "--weights")
    features = W.load_features(source, deepest_index("vgg16", ["relu5_2"]))
    assert len(features) == 28
    torch.testing.assert_close(features[26].weight, state["features.26.weight"])


def test_wrong_architecture_is_a_clear_error(clean_env):
    path = clean_env / "v16.pth"
    save_full_features(path, "vgg16")
    source = W.resolve("vgg19", str(path))
    with pytest.raises(BadInput, match="vgg19.*--backbone"):
        W.load_features(source, deepest_index("vgg19", ["relu5_2"]))


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/nst-pwned",))


def test_a_weights_file_cannot_run_code(clean_env):
    path = clean_env / "evil.pth"
    torch.save({"features.0.weight": Exploit()}, path)
    with pytest.raises(BadInput, match="refused"):
        W.load_features(W.WeightsSource("file", "vgg19", "torchvision", str(path)), 1)
    assert not os.path.exists("/tmp/nst-pwned")


def test_import_keeps_a_trimmed_copy_with_its_preprocessing(clean_env):
    path = clean_env / "v16.pth"
    save_full_features(path, "vgg16")
    kept = W.import_file(str(path), "auto", "caffe")
    assert kept == W.trimmed_path("vgg16", "caffe") and os.path.getsize(kept) < os.path.getsize(path)
    trimmed = torch.load(kept, weights_only=True)
    assert "features.28.weight" not in trimmed and "features.26.weight" in trimmed
    # auto finds it (VGG-19 is absent), with the preprocessing it was imported with.
    source = W.resolve("auto")
    assert (source.architecture, source.preprocessing, source.origin) == ("vgg16", "caffe", "engine data folder")


def test_resolution_order(clean_env, monkeypatch):
    hub = os.path.join(str(clean_env / "torch"), "hub", "checkpoints")
    os.makedirs(hub)
    save_full_features(os.path.join(hub, "vgg19-dcbb9e9d.pth"), "vgg19")
    assert W.resolve("vgg19").origin == "torchvision cache"
    W.fetch("vgg19")  # trims the cached download into the data folder, no network
    assert W.resolve("vgg19").origin == "engine data folder"
    monkeypatch.setenv("NST_WEIGHTS", "random")
    assert W.resolve("vgg19").kind == "random"
    assert W.resolve("vgg19", weights=W.trimmed_path("vgg19")).origin == "--weights"


def test_offline_without_weights_says_what_to_do_quickly(clean_env, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(W.urllib.request, "urlopen", offline)
    started = time.perf_counter()
    with pytest.raises(WeightsMissing) as info:
        W.resolve("vgg19")
    message = str(info.value)
    assert time.perf_counter() - started < 3
    assert W.trimmed_path("vgg19") in message and "nst-core weights import" in message
    assert "vgg19-dcbb9e9d.pth" in message and "NST_WEIGHTS" in message
    with pytest.raises(WeightsMissing, match="not in any of the places searched"):
        W.resolve("vgg19", download=False)


@pytest.mark.parametrize("value, refuses", [("1", True), ("yes", True), ("0", False), ("false", False), ("", False)])
def test_nst_offline_means_what_it_says(clean_env, monkeypatch, value, refuses):
    def network(*args, **kwargs):
        raise urllib.error.URLError("no network in this test")

    monkeypatch.setattr(W.urllib.request, "urlopen", network)
    monkeypatch.setenv("NST_OFFLINE", value)
    with pytest.raises(WeightsMissing) as info:
        W.resolve("vgg19")
    assert ("NST_OFFLINE is set" in str(info.value)) == refuses
    assert ("the download failed" in str(info.value)) == (not refuses)


def test_caffe_weights_are_never_downloaded_and_the_message_names_the_caffe_file(clean_env):
    with pytest.raises(WeightsMissing) as info:
        W.resolve("vgg16", preprocessing="caffe")
    assert W.trimmed_path("vgg16", "caffe") in str(info.value)
    assert "--weights-format caffe" in str(info.value)
