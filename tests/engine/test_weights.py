"""Weights: resolution order, trimming, safety and the offline message."""

import os
import time
import urllib.error

import pytest
import torch

from nst_core import BadInput, WeightsMissing
from nst_core.engine import weights as W
from nst_core.engine.backbone import build_features, deepest_index, layer_names


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
    names = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1", "relu5_2")
    assert [vgg19[n] for n in names] == [1, 6, 11, 20, 29, 31]
    names = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1", "relu5_2")
    assert [vgg16[n] for n in names] == [1, 6, 11, 18, 20, 25, 27]
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


# --- imported weights are recognised, not assumed ------------------------------------------------------

def test_known_files_are_recognised_by_their_hash():
    assert {(k.architecture, k.preprocessing) for k in W.KNOWN_FILES if len(k.sha256) == 8} == \
        {("vgg16", "torchvision"), ("vgg19", "torchvision")}
    vgg16 = W.recognise("397923af" + "0" * 56)  # torchvision publishes the prefix in the file's name
    assert (vgg16.architecture, vgg16.preprocessing) == ("vgg16", "torchvision")
    assert W.recognise("dcbb9e9d" + "f" * 56).architecture == "vgg19"
    caffe = W.recognise("d2fcbc31f95784dfee883d634eb84ff7939219231b6a7b835610783e0508a894")
    assert (caffe.architecture, caffe.preprocessing) == ("vgg16", "caffe")
    assert W.recognise("d2fcbc31" + "0" * 56) is None  # a whole hash is matched whole
    assert W.recognise("0" * 64) is None


def test_a_known_file_is_imported_with_its_own_preprocessing_and_a_contradiction_is_refused(clean_env, monkeypatch):
    path = clean_env / "some-name.pth"
    save_full_features(path, "vgg16")
    known = W.KnownFile(W.sha256(str(path)), "vgg16", "caffe", "a Caffe VGG-16 seen in this test")
    monkeypatch.setattr(W, "KNOWN_FILES", W.KNOWN_FILES + (known,))
    heard = []
    kept = W.import_file(str(path), report=heard.append)  # no --weights-format: the hash says caffe
    assert kept == W.trimmed_path("vgg16", "caffe")
    assert "recognised as a Caffe VGG-16 seen in this test" in " ".join(heard)
    with pytest.raises(BadInput, match="expects caffe preprocessing.*leave out --weights-format"):
        W.import_file(str(path), preprocessing="torchvision")
    with pytest.raises(BadInput, match="not VGG19"):
        W.import_file(str(path), architecture="vgg19")


def test_a_known_file_given_with_weights_gets_its_own_preprocessing(clean_env, monkeypatch):
    path = clean_env / "caffe.pth"
    save_full_features(path, "vgg16")
    assert W.resolve("auto", str(path)).preprocessing == "torchvision"  # unknown: the documented default
    known = W.KnownFile(W.sha256(str(path)), "vgg16", "caffe", "a Caffe VGG-16 seen in this test")
    monkeypatch.setattr(W, "KNOWN_FILES", W.KNOWN_FILES + (known,))
    assert W.resolve("auto", str(path)).preprocessing == "caffe"
    assert W.resolve("auto", str(path), "torchvision").preprocessing == "torchvision"  # told otherwise


def test_an_unknown_file_without_a_format_is_refused_naming_the_option(clean_env):
    path = clean_env / "v16.pth"
    save_full_features(path, "vgg16")
    with pytest.raises(BadInput, match="--weights-format torchvision.*--weights-format caffe"):
        W.import_file(str(path))
    assert not os.path.exists(W.weights_dir()) or os.listdir(W.weights_dir()) == []
    assert W.import_file(str(path), preprocessing="torchvision") == W.trimmed_path("vgg16", "torchvision")
    # an engine copy declares its preprocessing, so importing it again needs nothing more
    again = clean_env / "copy.pth"
    os.replace(W.trimmed_path("vgg16", "torchvision"), again)
    assert W.import_file(str(again)) == W.trimmed_path("vgg16", "torchvision")


def test_a_file_without_a_usable_layout_is_refused(clean_env):
    path = clean_env / "odd.pth"
    state = save_full_features(path, "vgg16")
    del state["features.26.weight"]
    torch.save(state, path)
    with pytest.raises(BadInput, match="no features.26.weight"):
        W.import_file(str(path), preprocessing="caffe")
    torch.save({"conv1.weight": torch.zeros(64, 3, 3, 3)}, path)
    with pytest.raises(BadInput, match="not a weights file the engine can use"):
        W.import_file(str(path), preprocessing="caffe")


def test_an_import_replaces_the_copy_it_supersedes_and_becomes_the_engines_choice(clean_env):
    v16, v19 = clean_env / "v16.pth", clean_env / "v19.pth"
    save_full_features(v16, "vgg16")
    save_full_features(v19, "vgg19")
    W.import_file(str(v16), preprocessing="torchvision")  # the mislabelled import of the issue
    W.import_file(str(v16), preprocessing="caffe")  # the correct one replaces it
    assert not os.path.exists(W.trimmed_path("vgg16", "torchvision"))
    source = W.resolve("auto")
    assert (source.architecture, source.preprocessing) == ("vgg16", "caffe") and "active" in source.why
    W.import_file(str(v19), preprocessing="torchvision")  # a later import of another network: its turn
    assert W.resolve("auto").architecture == "vgg19"
    assert os.path.exists(W.trimmed_path("vgg16", "caffe"))  # another network's copy stays, for --backbone
    assert W.resolve("vgg16").preprocessing == "caffe"
    W.import_file(str(v16), preprocessing="caffe")
    assert W.resolve("auto").architecture == "vgg16"  # the last import, even with VGG-19 at hand
    os.unlink(W.trimmed_path("vgg16", "caffe"))  # the active copy gone: back to the documented order
    assert W.resolve("auto").architecture == "vgg19"


def test_fetch_offline_says_what_is_installed_and_the_offline_way(clean_env, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(W.urllib.request, "urlopen", offline)
    path = clean_env / "v16.pth"
    save_full_features(path, "vgg16")
    kept = W.import_file(str(path), preprocessing="caffe")
    with pytest.raises(WeightsMissing) as info:
        W.fetch("vgg19")
    message = str(info.value)
    assert f"Already installed: vgg16 (caffe) {kept}, which the engine uses" in message
    assert "With internet: run `nst-core weights fetch`" not in message  # not the command just run
    assert "vgg19-dcbb9e9d.pth" in message and "weights import FILE" in message
    assert "--weights-format caffe|torchvision" in message and "--backbone" in message


def _engine(env, *args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "nst_core", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=120)


def test_weights_path_prints_the_file_in_use_or_says_there_is_none(clean_env):
    env = dict(os.environ, NST_OFFLINE="1")
    none = _engine(env, "weights", "path")
    assert none.returncode == 0 and "no VGG19 weights installed yet" in none.stderr
    assert "weights fetch" in none.stderr and "weights import FILE" in none.stderr
    path = clean_env / "v16.pth"
    save_full_features(path, "vgg16")
    imported = _engine(env, "weights", "import", path, "--weights-format", "caffe")
    assert imported.returncode == 0, imported.stderr
    shown = _engine(env, "weights", "path")
    assert shown.stdout.strip() == W.trimmed_path("vgg16", "caffe")  # not a VGG-19 file that is not there
    assert "in use: vgg16, caffe preprocessing" in shown.stderr
    doctor = _engine(env, "doctor", "--json")
    import json

    report = json.loads(doctor.stdout)
    assert report["weights_in_use"]["path"] == W.trimmed_path("vgg16", "caffe")
    assert report["weights_dir"] == W.weights_dir()


def test_every_weights_option_is_described_in_its_help():
    from nst_core.cli import build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    actions = next(a for a in commands["weights"]._actions if a.dest == "action").choices
    for name, parser in actions.items():
        options = [a for a in parser._actions if a.dest != "help"]
        assert options, name
        undocumented = [a.dest for a in options if not a.help]
        assert undocumented == [], f"weights {name}: {undocumented}"
        assert parser.description, name
