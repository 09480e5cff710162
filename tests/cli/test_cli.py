"""The command-line contract of ``nst-core`` (docs/PROTOCOL.md), tested on the real CLI in subprocesses.

Every run uses the untrained network (``--weights random``) on the CPU at a tiny size: what is checked
is the protocol (options, JSON lines, exit codes, stopping, files), not the picture. Each subprocess that
imports torch costs seconds, so checks that belong together share one run. The engines run with one
CPU thread (OMP_NUM_THREADS=1, unless set already): on a small shared machine that is the quicker way.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.engine_runs import (
    EXIT_NAMES,
    LONG,
    QUICK,
    LiveEngine,
    base_env,
    check_cancelled,
    check_error_run,
    documented_options,
    folder_listing,
    isolated_env,
    run_engine,
)
from helpers.pictures import make_content, make_style
from helpers.protocol_checks import (
    KNOWN_EVENTS,
    PROTOCOL_DOC,
    check_fields,
    documented_events,
    documented_exit_codes,
    documented_protocol_version,
    parse_jsonl,
)
from helpers.repo import REPO, engine_command
from nst_client import (
    protocol,  # the plug-in's protocol client: a copy of some contract facts
    subprocess_engine,  # ... and its command line
)
from nst_core import errors


@pytest.fixture
def inputs(tmp_path):
    """content.png, style.png and an empty output folder ``out``."""
    make_content().save(tmp_path / "content.png")
    make_style().save(tmp_path / "style.png")
    (tmp_path / "out").mkdir()
    return tmp_path


# ----- 1. help without torch ------------------------------------------------------------------

@pytest.mark.parametrize("args", [["--help"], ["stylize", "--help"]], ids=["top", "stylize"])
def test_help_answers_at_once_without_torch(args):
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "nst_core", *args], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=60, cwd=str(REPO))
    seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    imported = [line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:") and "|" in line]
    assert "nst_core.cli" in imported, "-X importtime gave no module list"
    heavy = [name for name in imported if name.split(".")[0] in ("torch", "torchvision")]
    assert not heavy, f"--help imported {heavy[:5]}"
    assert seconds < 1.0, f"{' '.join(args)} took {seconds:.2f} s"
    if args == ["--help"]:
        for command in ("stylize", "doctor", "weights"):
            assert command in proc.stdout
    else:
        listed = set(re.findall(r"--[a-z][a-z-]*", proc.stdout))
        documented = documented_options() | {"--multiscale", "--upscale", "--ssim-scaling",
                                             "--loss-normalization", "--learning-rate", "--ignore-stdin"}
        assert documented <= listed, f"stylize --help lacks {sorted(documented - listed)}"


def documented_choices():
    """{option: (choices, default or None)} for the Invocation table's options written with {a,b,...}."""
    text = PROTOCOL_DOC.read_text(encoding="utf-8")
    section = text.split("## Invocation", 1)[1].split("\n## ", 1)[0]
    found = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`(--[a-z-]+) \[?\{([a-z0-9,]+)\}\]?`", cells[0]) if len(cells) == 3 else None
        if match:
            default = re.fullmatch(r"`([a-z0-9]+)`", cells[2])
            found[match.group(1)] = (match.group(2).split(","), default.group(1) if default else None)
    return found


@pytest.mark.parametrize("option", sorted(documented_choices()))
def test_documented_choices_and_defaults_are_the_parsers(option):
    from nst_core.cli import build_parser  # light: no torch

    choices, default = documented_choices()[option]
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    action = next(a for a in commands["stylize"]._actions if option in a.option_strings)
    assert list(action.choices) == choices
    if action.default is not None:  # None: the preset's (or the weights file's) value decides
        assert action.default == default


def test_documented_choices_parse():
    found = documented_choices()
    assert {"--preset", "--optimizer", "--init", "--preserve-colors", "--device", "--backbone",
            "--weights-format", "--progress"} <= set(found)
    assert found["--progress"] == (["auto", "bar", "jsonl", "none"], "auto")


# ----- 2. a successful run ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def jsonl_run(tmp_path_factory):
    """One full ``--progress jsonl`` run with SSIM on, an RGBA content and an older file at the output."""
    folder = tmp_path_factory.mktemp("jsonl-run")
    make_content(alpha=True).save(folder / "content.png")
    make_style().save(folder / "style.png")
    out = folder / "out" / "result.png"
    out.parent.mkdir()
    out.write_bytes(b"an older file that the result replaces")
    old_inode = out.stat().st_ino
    proc = run_engine("stylize", folder / "content.png", folder / "style.png", "-o", out, "--size", "64",
                      "--iterations", "2", "--device", "cpu", "--weights", "random", "--progress", "jsonl",
                      "--ssim")  # named, so the run does not depend on the preset's default
    return {"proc": proc, "folder": folder, "out": out, "old_inode": old_inode}


def test_jsonl_run_stream_is_start_progress_done(jsonl_run):
    proc = jsonl_run["proc"]
    assert proc.returncode == 0, proc.stderr
    events = parse_jsonl(proc.stdout)
    names = [e["event"] for e in events]
    assert set(names) <= KNOWN_EVENTS - {"error"}, names
    core = [n for n in names if n != "warning"]
    assert core[0] == "start" and core[-1] == "done" and names[-1] == "done", names
    assert set(core[1:-1]) == {"progress"}, names

    start = events[names.index("start")]
    assert start["protocol"] == 1 and start["device"] == "cpu" and start["backbone"] == "vgg19"
    assert start["content_size"] == [96, 64] and max(start["working_size"]) == 64
    assert start["iterations"] == 2 and start["scales"][-1] == start["working_size"]
    assert start["upscale"] in ("none", "resize", "detail", "tiles")

    progress = [e for e in events if e["event"] == "progress"]
    assert [p["iteration"] for p in progress] == list(range(1, start["iterations"] + 1))
    assert all(p["total"] == start["iterations"] for p in progress)
    fractions = [p["fraction"] for p in progress]
    assert all(0 <= f <= 1 for f in fractions) and fractions == sorted(fractions)
    assert fractions[-1] == pytest.approx(1.0)
    for p in progress:
        assert p["phase"] in ("stylize", "refine") and 0 <= p["scale"] < len(start["scales"])
        assert len(p["ssim_factors"]) == 5, "one factor per style layer (5 with the default layers)"
        assert all(isinstance(p[k], (int, float)) for k in ("loss", "content_loss", "style_loss", "tv_loss"))
        assert p["elapsed"] >= 0 and (p["eta"] is None or p["eta"] >= 0)

    done = events[-1]
    out = jsonl_run["out"]
    assert os.path.isabs(done["output"]) and done["output"] == str(out.resolve())
    with Image.open(done["output"]) as image:
        assert image.size == (96, 64) and image.format == "PNG"
    stats = done["stats"]
    assert stats["iterations"] == 2 and stats["output_size"] == [96, 64]
    assert stats["working_size"] == start["working_size"] and isinstance(stats["capped"], bool)
    assert stats["device"] == "cpu" and len(stats["ssim_factors"]) == 5
    # Why it stopped and after how many steps (2 steps: too few for a convergence window).
    assert stats["steps"] == 2 and stats["stop_reason"] == "max_iterations"


@pytest.mark.parametrize("event_name", ["start", "progress", "done"])
def test_jsonl_run_events_have_the_documented_fields(jsonl_run, event_name):
    events = [e for e in parse_jsonl(jsonl_run["proc"].stdout) if e["event"] == event_name]
    assert events, f"no {event_name} event"
    spec = documented_events()[event_name]
    for event in events:
        check_fields(event, spec)


def test_protocol_table_parses():
    """The doc parser itself: a broken table must not make the field checks vacuous."""
    table = documented_events()
    assert set(table) == KNOWN_EVENTS
    assert {"protocol", "version", "device", "backbone", "content_size", "working_size", "iterations",
            "scales", "upscale"} <= table["start"][0] and not table["start"][1]
    assert {"iteration", "total", "fraction", "ssim_factors", "eta"} <= table["progress"][0]
    assert not {"stylize", "refine", "null", "none", "tiles"} & (table["progress"][0] | table["start"][0])
    assert {"output", "stats"} <= table["done"][0] and table["done"][2]["stats"][1] is True
    assert {"seconds", "output_size", "capped"} <= table["done"][2]["stats"][0]
    assert {"code", "exit_code", "message"} == table["error"][0]
    assert {"--output", "--weights", "--progress", "--style-blend"} <= documented_options()


def test_jsonl_run_keeps_alpha_and_replaces_the_old_file_atomically(jsonl_run):
    assert jsonl_run["proc"].returncode == 0, jsonl_run["proc"].stderr
    out = jsonl_run["out"]
    with Image.open(out) as result, Image.open(jsonl_run["folder"] / "content.png") as content:
        assert result.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(result)[:, :, 3], np.asarray(content)[:, :, 3])
    # Replaced by a rename (a new file), not rewritten in place; nothing else left in the folder.
    assert out.stat().st_ino != jsonl_run["old_inode"]
    assert folder_listing(out.parent) == ["result.png"]


def test_progress_none_prints_nothing_and_writes_the_file(inputs):
    out = inputs / "out" / "result.jpg"
    proc = run_engine("stylize", inputs / "content.png", inputs / "style.png", "-o", out, *QUICK,
                      "--iterations", "1", "--progress", "none")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    best = re.search(r"best loss \S+ after (\d+) of 1 steps", proc.stderr)
    assert best and int(best.group(1)) <= 1, "the summary names a step that happened"
    with Image.open(out) as image:
        assert image.size == (96, 64) and image.format == "JPEG"
    assert folder_listing(out.parent) == ["result.jpg"]


def test_jsonl_is_utf8_whatever_the_locale_says(inputs):
    missing = inputs / "\u732b.png"  # a cat, in a name no Windows code page can spell
    env = base_env(PYTHONIOENCODING="cp1252")
    proc = subprocess.run(engine_command("stylize", missing, inputs / "style.png", "-o", inputs / "out" / "r.png",
                                         "--progress", "jsonl"),
                          stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=60, cwd=str(REPO))
    assert proc.returncode == 2, proc.stderr.decode("utf-8", "replace")[-1500:]
    lines = proc.stdout.decode("utf-8").splitlines()  # strict: the protocol says UTF-8
    error = json.loads(lines[-1])
    assert error["event"] == "error" and error["code"] == "bad_input"
    assert str(missing) in error["message"]


# ----- 3. bad input -------------------------------------------------------------------------------

def _truncated_png(folder):
    whole = folder / "whole.png"
    make_content(192, 128).save(whole)
    data = whole.read_bytes()
    path = folder / "truncated.png"
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


def _unwritable_folder(folder):
    if os.geteuid() == 0:
        return Path("/sys")  # root may write anywhere else; sysfs refuses to create files
    locked = folder / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    return locked


def _tiny(folder):
    path = folder / "tiny.png"
    Image.new("RGB", (1, 1), (200, 10, 10)).save(path)
    return path


def _text(folder):
    path = folder / "notes.png"
    path.write_text("this is a text file, not a picture\n" * 20)
    return path


def _style_folder(folder):
    (folder / "styles").mkdir()
    return folder / "styles"


# id: (content, style(s), output, extra args, words the message must contain one of)
BAD_INPUTS = {
    "missing-content": (lambda f: f / "nope.png", None, None, (), ("not found",)),
    "style-is-a-folder": (None, _style_folder, None, (), ("folder",)),
    "text-file": (_text, None, None, (), ("not an image",)),
    "truncated-png": (_truncated_png, None, None, (), ("truncated", "corrupt")),
    "one-pixel": (None, _tiny, None, (), ("too small", "1x1")),
    "unwritable-folder": (None, None, lambda f: _unwritable_folder(f) / "result.png", (), ("not writable",)),
    "output-is-content": (None, None, lambda f: f / "content.png", (), ("input",)),
    "output-is-style-via-link": (None, None, "style-link", (), ("input",)),
    "output-folder-missing": (None, None, lambda f: f / "gone" / "result.png", (), ("does not exist",)),
    "unknown-extension": (None, None, lambda f: f / "out" / "result.xyz", (), ("format",)),
    "size-0": (None, None, None, ("--size", "0"), ("size",)),
    "iterations-negative": (None, None, None, ("--iterations", "-3"), ("iterations",)),
    "style-weight-nan": (None, None, None, ("--style-weight", "nan"), ("style-weight", "style weight")),
    "blend-count": (None, None, None, ("--style-blend", "1", "2"), ("style-blend", "blend")),
    "unknown-preset (argparse)": (None, None, None, ("--preset", "quick"), ("preset",)),
    "size-not-a-number (argparse, --progress=jsonl)": (None, None, None, ("--size", "big"), ("size", "big")),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_a_one_line_error_and_no_output(inputs, case):
    make_content_path, make_style_path, make_output, extra, words = BAD_INPUTS[case]
    content = make_content_path(inputs) if make_content_path else inputs / "content.png"
    style = make_style_path(inputs) if make_style_path else inputs / "style.png"
    if make_output == "style-link":
        output = inputs / "out" / "link.png"
        output.symlink_to(inputs / "style.png")
    else:
        output = make_output(inputs) if make_output else inputs / "out" / "result.png"
    folder = output.parent
    before = folder_listing(folder)
    protected = {p: p.read_bytes() for p in (inputs / "content.png", inputs / "style.png")}
    progress = ("--progress=jsonl",) if "--progress=jsonl" in case else ("--progress", "jsonl")
    proc = run_engine("stylize", content, style, "-o", output, "--iterations", "1", "--size", "64",
                      "--device", "cpu", "--weights", "random", *extra, *progress)
    check_error_run(proc, "bad_input", *words)
    assert folder_listing(folder) == before, "the output folder changed (an output or a temp file was left)"
    if make_output not in ("style-link",) and output not in protected:
        assert not output.exists()
    for path, data in protected.items():
        assert path.read_bytes() == data, f"{path.name} was changed"


def test_argparse_error_without_jsonl_is_plain_usage(inputs):
    """Without jsonl, argparse's usage error alone: exit 2, stdout empty."""
    proc = run_engine("stylize", inputs / "content.png", "--size", "64")
    assert proc.returncode == 2 and proc.stdout == ""
    assert "-o/--output" in proc.stderr and "Traceback" not in proc.stderr


# ----- 4. weights -----------------------------------------------------------------------------

@pytest.mark.parametrize("weights_format", [None, "caffe"])
def test_weights_missing_offline_names_the_file_and_the_remedies(inputs, weights_format):
    env = isolated_env(inputs, NST_OFFLINE="1")
    fmt = ("--weights-format", weights_format) if weights_format else ()
    expected = run_engine("weights", "path", *fmt, env=env)
    assert expected.returncode == 0, expected.stderr
    expected_path = expected.stdout.strip()
    assert expected_path.startswith(env["NST_DATA_DIR"]) and expected_path.endswith(".pth")

    out = inputs / "out" / "result.png"
    proc = run_engine("stylize", inputs / "content.png", inputs / "style.png", "-o", out, "--size", "64",
                      "--iterations", "1", "--device", "cpu", *fmt, "--progress", "jsonl", env=env, timeout=60)
    error = check_error_run(proc, "weights_missing", "weights")
    message = error["message"]
    assert "weights import" in message and "NST_WEIGHTS" in message, message
    assert "weights fetch" in message, message
    assert expected_path in message, message
    assert folder_listing(out.parent) == []
    assert not (inputs / "torch").exists() or not any((inputs / "torch").rglob("*.pth")), "it downloaded"


def test_weights_file_that_does_not_exist_is_bad_input(inputs):
    missing = inputs / "nonexistent.pth"
    proc = run_engine("stylize", inputs / "content.png", inputs / "style.png", "-o", inputs / "out" / "r.png",
                      "--size", "64", "--iterations", "1", "--device", "cpu", "--weights", missing,
                      "--progress", "jsonl")
    error = check_error_run(proc, "bad_input", "not found")
    assert str(missing) in error["message"]
    assert folder_listing(inputs / "out") == []


def test_doctor_json_reports_torch_and_no_weights(tmp_path):
    env = isolated_env(tmp_path, NST_OFFLINE="1")
    proc = run_engine("doctor", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)  # one JSON object, nothing else on stdout
    assert isinstance(report, dict)
    import torch

    assert report["torch"] == torch.__version__
    assert report["data_dir"] == env["NST_DATA_DIR"]
    assert set(report["weights"]) == {"vgg19", "vgg16"}
    assert all(info["found"] is False and info["message"] for info in report["weights"].values())
    assert report["ready"] is False


def test_weights_import_keeps_a_trimmed_copy_that_stylize_then_uses(tmp_path):
    import torch

    from nst_core.engine.backbone import build_features, layer_names

    env = isolated_env(tmp_path, NST_OFFLINE="1")
    names = layer_names("vgg16")
    features = build_features("vgg16", names["relu5_3"])  # all 13 convolutions, default (random) init
    state = {f"features.{key}": value.half() for key, value in features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)  # a non-feature tensor: left out of the copy
    source = tmp_path / "vgg16-caffe.pth"
    torch.save(state, source)

    where = run_engine("weights", "path", "--backbone", "vgg16", "--weights-format", "caffe", env=env)
    assert where.returncode == 0, where.stderr
    target = where.stdout.strip()
    assert target.startswith(env["NST_DATA_DIR"])
    imported = run_engine("weights", "import", source, "--weights-format", "caffe", env=env)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == target and os.path.isfile(target)

    kept = torch.load(target, weights_only=True)
    assert kept["nst_meta"]["architecture"] == "vgg16" and kept["nst_meta"]["preprocessing"] == "caffe"
    tensors = {k for k in kept if k != "nst_meta"}
    deepest = max(int(k.split(".")[1]) for k in tensors)
    assert all(k.startswith("features.") for k in tensors)
    assert deepest == names["conv5_2"], "the copy ends at relu5_2 (conv5_3 and the classifier are dropped)"
    torch.testing.assert_close(kept["features.0.weight"], state["features.0.weight"].float())

    content, style = tmp_path / "content.png", tmp_path / "style.png"
    make_content().save(content)
    make_style().save(style)
    out = tmp_path / "result.png"
    proc = run_engine("stylize", content, style, "-o", out, "--size", "64", "--iterations", "1", "--no-ssim",
                      "--device", "cpu", "--progress", "jsonl", env=env)
    assert proc.returncode == 0, proc.stderr
    events = parse_jsonl(proc.stdout)
    start = next(e for e in events if e["event"] == "start")
    assert start["backbone"] == "vgg16"
    assert target in start["weights"] and "caffe" in start["weights"], start["weights"]
    assert events[-1]["event"] == "done" and out.is_file()


# ----- 5. stopping ----------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "cancel-on-stdin", "stdin-closed"])
def test_stop_during_a_long_run(inputs, how):
    out = inputs / "out" / "result.png"
    piped = how in ("cancel-on-stdin", "stdin-closed")
    engine = LiveEngine("stylize", inputs / "content.png", inputs / "style.png", "-o", out, *LONG,
                        stdin=subprocess.PIPE if piped else subprocess.DEVNULL)
    try:
        engine.wait_for("progress")
        if how == "cancel-on-stdin":
            engine.proc.stdin.write("cancel\n")
            engine.proc.stdin.flush()
        elif how == "stdin-closed":
            engine.proc.stdin.close()
        else:
            engine.proc.send_signal(getattr(signal, how))
        check_cancelled(engine, out)
    finally:
        engine.kill()
        if piped and not engine.proc.stdin.closed:
            engine.proc.stdin.close()


def test_ignore_stdin_runs_on_with_a_closed_stdin(inputs):
    out = inputs / "out" / "result.png"
    engine = LiveEngine("stylize", inputs / "content.png", inputs / "style.png", "-o", out, "--iterations", "1",
                        *QUICK, "--progress", "jsonl", "--ignore-stdin", stdin=subprocess.PIPE)
    engine.proc.stdin.close()
    try:
        code, _, events = engine.finish(timeout=120)
    finally:
        engine.kill()
    assert code == 0, (events[-2:], "".join(engine.stderr)[-2000:])
    assert events[-1]["event"] == "done" and out.is_file()


# ----- 7. outputs never replace inputs; a failed run keeps an older result ---------------------------

def test_failed_run_keeps_the_older_file_at_the_output_path(inputs):
    out = inputs / "out" / "result.png"
    make_style(seed=7).save(out)  # an earlier result
    old = out.read_bytes()
    proc = run_engine("stylize", inputs / "content.png", _text(inputs), "-o", out, "--size", "64",
                      "--iterations", "1", "--device", "cpu", "--weights", "random", "--progress", "jsonl")
    check_error_run(proc, "bad_input", "not an image")
    assert out.read_bytes() == old
    assert folder_listing(out.parent) == ["result.png"]


# ----- 8. the contract's copies outside the engine ------------------------------------------------
# The plug-in, the installer and the fakes cannot import the engine (no torch there), so they keep
# copies of some contract facts; each copy is compared here with the engine's own value.

def stylize_parser():
    from nst_core.cli import build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    return commands["stylize"]


def stylize_choices(option):
    return tuple(next(a for a in stylize_parser()._actions if option in a.option_strings).choices)


def test_exit_codes_in_the_doc_are_the_engines():
    assert len(EXIT_NAMES) > 3, "nst_core.errors gave no exit codes"
    assert documented_exit_codes() == EXIT_NAMES


def test_exit_code_copies_are_the_engines():
    from helpers import fake_engine
    from nst_installer import engine as installer_engine

    assert protocol.EXIT_CODE_NAMES == EXIT_NAMES
    assert fake_engine.EXIT_CODES == {name: code for code, name in EXIT_NAMES.items() if code != 0}
    assert installer_engine.WEIGHTS_MISSING == errors.WeightsMissing.exit_code


def test_plugin_presets_are_the_engines():
    from nst_core.params import PRESETS

    assert protocol.PRESETS == tuple(PRESETS) == stylize_choices("--preset")
    # The presets whose loss weights are part of their definition (the plug-in sends none for them).
    fixed = {name for name, values in PRESETS.items() if {"content_weight", "style_weight"} <= set(values)}
    assert set(protocol.PRESETS_WITH_FIXED_WEIGHTS) == fixed


def test_plugin_devices_are_the_engines():
    assert protocol.DEVICES == stylize_choices("--device")
    from nst_core.engine import devices

    if hasattr(devices, "DEVICES"):  # the engine's own list, where it keeps one
        assert protocol.DEVICES == tuple(devices.DEVICES)


def test_plugin_choices_are_explicit_pairs():
    for choices in (protocol.PRESET_CHOICES, protocol.DEVICE_CHOICES):
        assert all(len(pair) == 2 and pair[0] and pair[1] for pair in choices)
        assert len({name for name, _ in choices}) == len(choices)


def test_plugin_protocol_version_is_the_documented_one(jsonl_run):
    assert protocol.PROTOCOL_VERSION == documented_protocol_version()
    start = next(e for e in parse_jsonl(jsonl_run["proc"].stdout) if e["event"] == "start")
    assert start["protocol"] == protocol.PROTOCOL_VERSION
    protocol.check_protocol(start)  # the client accepts what the engine sends


def dialog_cases():
    """The plug-in dialog's values: its defaults, then each number at either end of its range, for
    every preset and device."""
    from helpers.fake_gimpfu import FakeGimp
    from helpers.plugin_setup import forget_plugin_modules, import_plugin

    try:
        import_plugin(REPO / "plugin", FakeGimp())
        parameters = sys.modules["nst_styled_layers"].PARAMETERS  # the one-layer procedure's
    finally:
        forget_plugin_modules()
    by_name = {param[1]: param for param in parameters}
    defaults = {name: by_name[name][3] for name in ("iterations", "size", "style_strength",
                                                    "use_ssim", "preserve_colors", "seed")}
    cases = [dict(defaults)]
    for name in ("iterations", "size", "style_strength", "seed"):
        low, high = by_name[name][4][:2]
        cases += [dict(defaults, **{name: low}), dict(defaults, **{name: high})]
    cases.append(dict(defaults, use_ssim=False, preserve_colors=True))
    return [dict(case, preset=preset, device=device) for case in cases
            for preset in protocol.PRESETS for device in protocol.DEVICES[:2]] + \
        [dict(defaults, preset="standard", device=device) for device in protocol.DEVICES]


def test_plugin_options_are_stylize_options_with_valid_values():
    from nst_core.options import params_from_args

    known = {flag for action in stylize_parser()._actions for flag in action.option_strings}
    cases = dialog_cases()
    assert len(cases) > 30
    for values in cases:
        options = subprocess_engine.command_line_options(protocol.engine_options(**values))
        assert {word for word in options if word.startswith("--")} <= known, options
        args = stylize_parser().parse_args(["c.png", "s.png", "-o", "r.png"] + options)
        params = params_from_args(args)  # raises BadInput on a value StyleParams refuses
        assert args.preset == values["preset"] and args.device == values["device"]
        for name in ("size", "iterations"):
            if values[name]:
                assert getattr(params, name) == values[name]
        assert (params.seed, params.use_ssim) == (values["seed"], values["use_ssim"])
        assert params.preserve_colors == ("luminance" if values["preserve_colors"] else None)
        if values["preset"] not in protocol.PRESETS_WITH_FIXED_WEIGHTS:
            assert params.style_strength == values["style_strength"]


# (masks, region weights) as the plug-in's region rows give them: a region and the rest, two regions
# (one of them off: weight 0), the most the engine takes.
REGION_CASES = [
    (["/t/region-0.png", protocol.REST_MASK], [1.0, 0.5]),
    (["/t/region-0.png", "/t/region-1.png"], [0.0, 4.0]),
    (["/t/region-%d.png" % index for index in range(protocol.MAX_REGIONS)], None),
]


@pytest.mark.parametrize("masks, weights", REGION_CASES, ids=["rest", "two", "most"])
def test_plugin_regions_are_the_command_line_the_engine_takes(masks, weights):
    from nst_core.engine.regions import check_region_weights
    from nst_core.options import check_style_masks, params_from_args

    styles = ["/t/style-%d.png" % index for index in range(len(masks))]
    command = subprocess_engine.build_command(
        "/p", "/t/c.png", styles, "/t/r.png", protocol.engine_options(preset="fast", size=64),
        masks=masks, region_weights=weights)
    args = stylize_parser().parse_args(command[command.index("stylize") + 1:])
    assert args.styles == styles and args.style_masks == masks
    assert check_style_masks(args.style_masks, len(styles)) == masks
    params = params_from_args(args)
    assert params.region_weights == (None if weights is None else tuple(weights))
    check_region_weights(params.region_weights, len(styles), True)


def test_plugin_region_facts_are_the_engines():
    from nst_core.engine.regions import MAX_REGIONS
    from nst_core.options import REST_MASK

    assert (protocol.REST_MASK, protocol.MAX_REGIONS) == (REST_MASK, MAX_REGIONS)


def test_plugin_temporal_weight_default_is_the_engines():
    from nst_core.params import DEFAULT_TEMPORAL_WEIGHT

    assert protocol.TEMPORAL_WEIGHT_DEFAULT == DEFAULT_TEMPORAL_WEIGHT


def test_the_entry_point_makes_idle_threads_sleep_before_torch_loads():
    """Spinning OpenMP threads made two engines on a shared CPU 27x slower each. The CLI's
    entry sets OMP_WAIT_POLICY=PASSIVE before anything imports torch, and keeps a value the user set."""
    code = ("import os, sys\nfrom nst_core.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules, file=sys.stderr)")
    env = base_env()
    env.pop("OMP_WAIT_POLICY", None)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.stderr.strip().splitlines()[-1] == "PASSIVE False", proc.stderr
    proc = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                          capture_output=True, text=True, timeout=60)
    assert proc.stderr.strip().splitlines()[-1] == "ACTIVE False", proc.stderr
