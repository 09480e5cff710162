"""End to end in a real GIMP 3: install the plug-in as a user does, call it through the PDB, and
check the layer stack it leaves.

GIMP 3 runs headless (gimp-console-3.0) in the Debian 13 chroot that tests/gimp3/build-chroot.sh
builds (NST_GIMP3_CHROOT, default ~/.cache/nst-gimp-dev/gimp3-trixie), or from the system when it
has gimp-console-3.0. Neither there: the test is skipped, except with CI=true or NST_REQUIRE_GIMP=1,
where it fails and says why. The engine is the real nst_core of this Python (NST_WEIGHTS=random, a
64 px working size, 8 iterations (NST_E2E_ITERATIONS), preset NST_E2E_PRESET or standard) once
`python -m nst_core stylize --help` works here, else the fake engine; NST_E2E_ENGINE=fake or =real
chooses. Run alone:

    /root/.cache/nst-gimp-dev/venv/bin/python -m pytest -s -m gimp tests/gimp3/test_gimp3_e2e.py
"""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from helpers.checks import check, failed_labels
from helpers.fake_engine import write_fake_engine
from helpers.plugin_setup import GIMP3_ARGUMENTS, GIMP3_FRAMES_ARGUMENTS
from helpers.real_gimp import bind_paths, choose_engine, engine_python_for_this_checkout, install_plugin, locate_gimp
from helpers.repo import REPO
from nst_client import http_engine, local_service

BATCH_RUNNER = REPO / "tests" / "gimp3" / "gimp3-batch.sh"
BATCH_CODE = REPO / "tests" / "gimp3" / "e2e_batch.py"
PROCEDURE = "python-fu-nst-style-transfer"
REGISTERED_ARGUMENTS = ["run-mode", "image", "drawables", *GIMP3_ARGUMENTS]
FRAMES_PROCEDURE = "python-fu-nst-style-transfer-frames"
REGISTERED_FRAMES_ARGUMENTS = ["run-mode", "image", "drawables", *GIMP3_FRAMES_ARGUMENTS]
WORKING_SIZE = 64
# The fake engine needs no more than 2 iterations. The real one, with NST_WEIGHTS=random, hands back
# its starting image (the content itself) after 2, so the "pixels differ" check needs a few more.
ITERATIONS = {"fake": 2, "real": 8}
# The target layer: smaller than the 160x120 canvas, offset, and larger than the working size (as
# a user's layer usually is, so the engine scales its result up to the layer's size).
TARGET_SIZE, TARGET_OFFSETS = [96, 64], [40, 30]
PRESET = os.environ.get("NST_E2E_PRESET", "standard")

pytestmark = [pytest.mark.gimp, pytest.mark.slow]


def start_gimp(kind, root, home, work_dir, env, name):
    """Starts GIMP on the batch code for one scenario; finish_gimp() collects its findings."""
    params_path = work_dir / ("%s-params.json" % name)
    output = work_dir / ("%s-findings.json" % name)
    params = dict(env.pop("params"), output=str(output))
    params_path.write_text(json.dumps(params))
    command = [str(BATCH_RUNNER), "--home", str(home)]
    if kind == "chroot":
        command += ["--root", root]
        for path in bind_paths(work_dir):
            command += ["--bind", path]
    env = dict(env, NST_E2E_PARAMS=str(params_path))
    for key, value in sorted(env.items()):
        command += ["--env", "%s=%s" % (key, value)]
    command.append(str(BATCH_CODE))
    log = open(str(work_dir / ("%s-gimp.log" % name)), "w+")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    return process, output, log


def finish_gimp(process, output, log, timeout=1200):
    try:
        process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()  # the runner's own timeout should have come first
            process.wait()
        log.seek(0)
        gimp_output = log.read()
        log.close()
    assert output.exists(), ("GIMP wrote no findings (exit %d):\n%s"
                             % (process.returncode, gimp_output[-4000:]))
    findings = json.loads(output.read_text())
    assert findings["errors"] == [], "the batch code raised:\n" + "\n".join(findings["errors"])
    return findings, gimp_output


def run_gimp(kind, root, home, work_dir, env, name):
    return finish_gimp(*start_gimp(kind, root, home, work_dir, env, name))


def without_positions(layers):
    """Layers as compared before/after: a new layer shifts the positions of those below it."""
    return [dict((key, value) for key, value in layer.items() if key != "position")
            for layer in layers]


@pytest.fixture(scope="module")
def gimp_session(tmp_path_factory):
    kind, root = locate_gimp()
    work_dir = tmp_path_factory.mktemp("gimp3-e2e")
    home = work_dir / "home"
    engine = choose_engine()
    iterations = int(os.environ.get("NST_E2E_ITERATIONS") or ITERATIONS[engine])
    plug_ins = home / ".config" / "GIMP" / "3.0" / "plug-ins"
    engine_python = engine_python_for_this_checkout(work_dir)
    folder, config, how = install_plugin(plug_ins, engine_python, work_dir / "data")
    # The scenarios below run the engine a process per run; test_..._through_a_local_service the warm
    # local service, the config's default.
    env = {"NST_WEIGHTS": "random", "TMPDIR": str(work_dir / "tmp"), "NST_ENGINE_SERVICE": "off"}
    (work_dir / "tmp").mkdir()
    if engine == "fake":
        env["NST_ENGINE_PYTHON"] = write_fake_engine(str(work_dir / "fake-python"))
    print("\nGIMP 3 (%s %s), engine: %s, %d iterations at %d px; plug-in installed with %s into %s"
          % (kind, root, engine if engine == "fake" else "real nst_core (%s)" % engine_python,
             iterations, WORKING_SIZE, how, folder))
    return dict(kind=kind, root=root, work_dir=work_dir, home=home, env=env, engine=engine,
                config=config, iterations=iterations)


def scenario_params(session, scenario):
    return {"scenario": scenario, "content": str(REPO / "examples" / "chelsea.png"),
            "style": str(REPO / "examples" / "great_wave.jpg"), "size": WORKING_SIZE,
            "iterations": session["iterations"], "preset": PRESET, "temp_dir": session["env"]["TMPDIR"],
            "target_size": TARGET_SIZE, "target_offsets": TARGET_OFFSETS}


def steps_within_plan(outcome):
    """An outcome line ends in "step K of N": K steps taken of at most N (fewer when it converged)."""
    found = re.search(r"s, step (\d+) of (\d+)$", outcome)
    return found is not None and 1 <= int(found.group(1)) <= int(found.group(2))


def added_layer_checks(before, after, extra_new_layer_checks=lambda new_layer: []):
    """The checks of the one layer a styling run adds above 'Photo', between the layers before and after
    the run; extra_new_layer_checks(new_layer) -> more checks of it, listed before the untouched check."""
    target = [layer for layer in before if layer["name"] == "Photo"][0]
    results = [check("exactly one layer added", len(after) == len(before) + 1,
                     "%d -> %d layers" % (len(before), len(after)))]
    new = [layer for layer in after if layer["name"] not in [b["name"] for b in before]]
    new_layer = new[0] if len(new) == 1 else {}
    target_after = [layer for layer in after if layer["name"] == "Photo"][0]
    results += [
        check("new layer named 'Styled: Great Wave'", new_layer.get("name") == "Styled: Great Wave",
              str(new_layer.get("name"))),
        check("directly above the target",
              new_layer.get("position") == target_after["position"] - 1
              and new_layer.get("parent") == target_after["parent"],
              "new at %s, target at %s" % (new_layer.get("position"), target_after["position"])),
        check("same size and offsets as the target",
              new_layer.get("size") == TARGET_SIZE and new_layer.get("offsets") == TARGET_OFFSETS,
              "%s at %s" % (new_layer.get("size"), new_layer.get("offsets"))),
        check("its pixels differ from the content's",
              new_layer.get("pixels_sha1") not in (None, target["pixels_sha1"])),
    ]
    results += extra_new_layer_checks(new_layer)
    results.append(check("the other layers are untouched (names, order, sizes, offsets, pixels)",
                         without_positions([layer for layer in after if layer is not new_layer])
                         == without_positions(before)))
    return results


def check_styled_layer(found):
    """The checks of the layer a styling run adds (shared by the process and the service scenarios)."""
    run = found["run"]
    results = [check("run succeeds", run["status"] == "success", str(run))]
    before, after = found["before"], found["after"]
    results += added_layer_checks(before, after)
    results += [
        check("with a selection: run succeeds, one more layer", found["selection_run"]["status"]
              == "success" and len(found["after_selection_run"]) == len(after) + 1,
              str(found["selection_run"])),
        check("temp folder clean at the end", found["run_folders_at_end"] == []),
    ]
    return results


def test_plugin_styles_a_layer_in_real_gimp3(gimp_session):
    session = gimp_session
    env = dict(session["env"], params=scenario_params(session, "success"))
    found, gimp_output = run_gimp(session["kind"], session["root"], session["home"],
                                  session["work_dir"], env, "success")
    print("checks after a styling run (real GIMP 3, engine: %s):" % session["engine"])
    registration = found["registration"]
    results = [
        check("procedure %s registers" % PROCEDURE, registration["registered"]),
        check("menu <Image>/Filters/Artistic, label 'Neural Style Transfer...'",
              registration.get("menu_paths") == ["<Image>/Filters/Artistic"]
              and registration.get("menu_label") == "Neural Style Transfer...",
              "%s %s" % (registration.get("menu_paths"), registration.get("menu_label"))),
        check("arguments are %s" % ", ".join(GIMP3_ARGUMENTS),
              registration.get("arguments") == REGISTERED_ARGUMENTS, str(registration.get("arguments"))),
        check("the GimpUi calls of the interactive dialog exist in this GIMP",
              registration.get("missing_dialog_api") == [],
              "missing: %s" % registration.get("missing_dialog_api")),
    ]
    run = found["run"]
    results.append(check("run succeeds", run["status"] == "success", str(run)))
    before, after = found["before"], found["after"]
    target = [layer for layer in before if layer["name"] == "Photo"][0]
    results.append(check("target 'Photo' is smaller than the canvas with offsets",
                         target["size"] == TARGET_SIZE and target["offsets"] == TARGET_OFFSETS,
                         "%s at %s" % (target["size"], target["offsets"])))
    results += added_layer_checks(before, after, lambda new_layer: [
        check("no mask without a selection", new_layer.get("has_mask") is False)])
    results += [
        check("the style image is untouched", found["style_after"] == found["style_before"]),
        check("no run folder left in the temp folder", found["run_folders_after_run"] == [],
              str(found["run_folders_after_run"])),
    ]
    selection_run = found["selection_run"]
    after_selection = found["after_selection_run"]
    masked = [layer for layer in after_selection
              if layer["name"].startswith("Styled: Great Wave") and layer["has_mask"]]
    results += [
        check("with a selection: run succeeds", selection_run["status"] == "success",
              str(selection_run)),
        check("with a selection: one more layer, and it has a layer mask",
              len(after_selection) == len(after) + 1 and len(masked) == 1,
              str([(layer["name"], layer["has_mask"]) for layer in after_selection])),
        check("the plug-in worked in the temp folder given to GIMP (TMPDIR)",
              len(found["runs_roots"]) == 1, str(found["runs_roots"])),
        check("temp folder clean at the end", found["run_folders_at_end"] == []),
    ]
    repeat = found["repeat_run"]
    repeated = [layer for layer in found["after_repeat_run"]
                if layer["name"].startswith("Styled: Great Wave")]
    results += [
        check("Filters > Repeat (run with last values, no layer given): run succeeds",
              repeat["status"] == "success", str(repeat)),
        check("... and adds one more 'Styled: Great Wave' layer",
              len(found["after_repeat_run"]) == len(after_selection) + 1
              and len(repeated) == 1 + len([layer for layer in after_selection
                                            if layer["name"].startswith("Styled: Great Wave")]),
              str([layer["name"] for layer in repeated])),
    ]
    log = Path(session["config"]["log_dir"]) / "nst_engine.log"
    results.append(check("engine log written to the configured log_dir", log.exists(), str(log)))
    commands = [line for line in (log.read_text().splitlines() if log.exists() else [])
                if " -m nst_core stylize " in line]
    # The run with every argument set is the second styling run; the Repeat run came after it.
    last = commands[-2].split() if len(commands) > 1 else []
    expected = ["--progress", "jsonl", "--preset", PRESET, "--size", str(WORKING_SIZE),
                "--iterations", str(session["iterations"])]
    if PRESET != "paper":
        expected += ["--style-strength", "7.5"]
    expected += ["--no-ssim", "--preserve-colors", "--seed", "7", "--device", "cpu"]
    results.append(check("every PDB argument reached the engine's command line",
                         last[-len(expected):] == expected, " ".join(last[-len(expected):])))
    outcomes = [line for line in (log.read_text().splitlines() if log.exists() else [])
                if line.startswith("(client) outcome:")]
    results.append(check("the log records the run's outcome (done, seconds, steps)",
                         bool(outcomes) and outcomes[-1].startswith("(client) outcome: done (exit code 0)")
                         and steps_within_plan(outcomes[-1]),
                         outcomes[-1] if outcomes else "no outcome line"))
    failed = failed_labels(results)
    if failed:
        print(gimp_output[-3000:])
    assert failed == []


def test_plugin_styles_a_layer_through_a_local_service_in_real_gimp3(gimp_session):
    """engine_service "local" (the installer's default): the first run starts a warm nst-core serve,
    the second (with a selection) reuses it; the layers arrive as with an engine process per run."""
    session = gimp_session
    if session["engine"] != "real":
        pytest.skip("the local service needs the real engine (the fake one knows only stylize)")
    env = dict(session["env"], NST_ENGINE_SERVICE="local", params=scenario_params(session, "success"))
    env["params"]["scenario"] = "success"
    log_dir = Path(session["config"]["log_dir"])
    state_file = log_dir / "nst_service-cpu.json"
    try:
        found, gimp_output = run_gimp(session["kind"], session["root"], session["home"],
                                      session["work_dir"], env, "service")
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        print("checks after two styling runs through the local service (real GIMP 3):")
        results = check_styled_layer(found)
        log = (log_dir / "nst_engine.log").read_text()
        url = state.get("url", "?")
        results += [
            check("the first run started the service", "started the engine service at %s" % url in log,
                  str(state)),
            check("the second run reused it", "reusing the engine service at %s" % url in log),
            check("both runs went through it (outcome lines)",
                  log.count("outcome: done via %s" % url) == 2),
            check("no engine process per run was started", " -m nst_core stylize " not in
                  log.split("started the engine service")[-1]),
        ]
        if state.get("url"):
            token = (log_dir / local_service.LOCAL_TOKEN_FILE).read_text().strip()
            health = http_engine.ServiceAddress(url, token).health()
            results.append(check("the service is still there, warm, with 2 jobs done",
                                 health["stats"]["jobs_done"] == 2, str(health["stats"])))
        failed = failed_labels(results)
        if failed:
            print(gimp_output[-3000:])
        assert failed == []
    finally:
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        if state.get("pid"):
            try:
                os.kill(state["pid"], signal.SIGTERM)
            except OSError:
                pass


def test_engine_failure_leaves_the_image_unchanged_in_real_gimp3(gimp_session):
    session = gimp_session
    failing = session["work_dir"] / "failing-engine"
    failing.write_text(textwrap.dedent("""\
        #!/bin/sh
        echo "engine exploded on purpose (e2e test)" >&2
        exit 1
        """))
    failing.chmod(0o755)
    env = dict(session["env"], NST_ENGINE_PYTHON=str(failing),
               params=scenario_params(session, "failure"))
    found, gimp_output = run_gimp(session["kind"], session["root"], session["home"],
                                  session["work_dir"], env, "failure")
    print("checks after failing runs (real GIMP 3):")
    before = found["before"]
    failure = found["engine_failure"]
    message = failure["message"] or ""
    log = str(Path(session["config"]["log_dir"]) / "nst_engine.log")
    results = [
        check("engine exiting 1: error status", failure["status"] == "execution-error",
              failure["status"]),
        check("the message says what happened and names the log",
              "exit code 1" in message and "engine exploded on purpose" in message
              and log in message, message),
        check("the layer stack is as it was", found["after_engine_failure"] == before),
        check("style layer = target: error status, clear message, image unchanged",
              found["same_layer"]["status"] == "execution-error"
              and "is the layer being styled" in (found["same_layer"]["message"] or "")
              and found["after_same_layer"] == before, str(found["same_layer"])),
        # Several selected layers are styled one after another (test_live_preview_...); when the
        # engine fails, none of them gets a layer.
        check("two drawables selected, the engine failing: error status, image unchanged",
              found["two_drawables"]["status"] == "execution-error"
              and "exit code 1" in (found["two_drawables"]["message"] or "")
              and found["after_two_drawables"] == before, str(found["two_drawables"])),
        check("no run folder left in the temp folder", found["run_folders_at_end"] == []),
    ]
    failed = failed_labels(results)
    if failed:
        print(gimp_output[-3000:])
    assert failed == []


# The live scenario: enough steps to see previews form (NST_WEIGHTS=random; convergence may end a
# run earlier) and a preview after every step.
LIVE_ITERATIONS = int(os.environ.get("NST_E2E_LIVE_ITERATIONS") or 300)


def new_layers(before, after):
    names = [layer["name"] for layer in before]
    return [layer for layer in after if layer["name"] not in names]


def test_live_preview_stop_cancel_and_several_layers_in_real_gimp3(gimp_session):
    """Previews update ONE layer in place (its pixels change from preview to preview, read back
    from GIMP); SIGUSR1 to the engine (stop and keep) leaves exactly one layer with the result;
    SIGTERM (the engine cancels) after a preview leaves none; two selected layers get one each."""
    session = gimp_session
    if session["engine"] != "real":
        pytest.skip("needs the real engine (the fake one is over before a signal could reach it)")
    work_dir = session["work_dir"]
    preview_log = work_dir / "preview-log.jsonl"
    params = dict(scenario_params(session, "live"), live_iterations=LIVE_ITERATIONS,
                  preview_log=str(preview_log))
    env = dict(session["env"], NST_PREVIEW_EVERY="0.5", NST_PREVIEW_LOG=str(preview_log),
               params=params)
    found, gimp_output = run_gimp(session["kind"], session["root"], session["home"], work_dir,
                                  env, "live")
    print("checks of the live preview, stop, cancel and several layers (real GIMP 3):")
    before = found["before"]
    log = found["preview_log"]
    previews = [line for line in log if line["what"] == "preview"]
    results_lines = [line for line in log if line["what"] == "result"]
    added = new_layers(before, found["after_preview_run"])
    print("  preview checksums (layer id: sha1[:12]): %s" % ", ".join(
        "%s:%s" % (line["layer"], line["sha1"][:12]) for line in log))
    if previews:
        print("  procedure call -> first preview on the layer: %.1f s (random weights, %d px, an "
              "engine process per run, shared CPU)" % (previews[0]["time"]
                                                       - found["preview_run_started"], WORKING_SIZE))
    results = [
        check("preview run succeeds", found["preview_run"]["status"] == "success",
              str(found["preview_run"])),
        check("at least 2 previews shown", len(previews) >= 2, "%d previews" % len(previews)),
        check("every preview and the result are in one and the same layer",
              len(set(line["layer"] for line in log)) == 1 and len(results_lines) == 1),
        check("the image has one layer more during the whole run",
              set(line["layers"] for line in log) == {len(before) + 1},
              str(sorted(set(line["layers"] for line in log)))),
        check("the layer's pixels change between previews",
              len(set(line["sha1"] for line in previews)) >= 2,
              "%d distinct of %d" % (len(set(line["sha1"] for line in previews)), len(previews))),
        check("one layer added, 'Styled: Great Wave', holding the result's pixels",
              len(added) == 1 and added[0]["name"] == "Styled: Great Wave"
              and bool(results_lines) and added[0]["pixels_sha1"] == results_lines[0]["sha1"]),
    ]
    stop_log = found["stop_log"]
    stop_added = new_layers(before, found["after_stop_run"])
    stop_results = [line for line in stop_log if line["what"] == "result"]
    results += [
        check("stop: SIGUSR1 reached the engine after the previews",
              bool(found["stop_signal"].get("pids")), str(found["stop_signal"])),
        check("stop: the run succeeds, the engine says stopped",
              found["stop_run"]["status"] == "success" and len(stop_results) == 1
              and stop_results[0]["stop_reason"] == "stopped",
              "%s %s" % (found["stop_run"], stop_results)),
        check("stop: exactly one layer, holding the best result so far",
              len(stop_added) == 1 and bool(stop_results)
              and stop_added[0]["pixels_sha1"] == stop_results[0]["sha1"]
              and len(set(line["layer"] for line in stop_log)) == 1),
    ]
    cancel = found["cancel_run"]
    results += [
        check("cancel: SIGTERM reached the engine after a preview was shown",
              bool(found["cancel_signal"].get("pids"))
              and any(line["what"] == "preview" for line in found["cancel_log"]),
              str(found["cancel_signal"])),
        check("cancel: error status that says cancelled",
              cancel["status"] == "execution-error" and "ancel" in (cancel["message"] or ""),
              str(cancel)),
        check("cancel: the preview layer is gone, the image as it was",
              found["after_cancel_run"] == before),
    ]
    several_before, several_after = found["several_before"], found["after_several_run"]
    names_after = [layer["name"] for layer in several_after]
    # GIMP keeps layer names unique: the second is "Styled: Great Wave #1"
    styled = [layer for layer in several_after if layer["name"].startswith("Styled: Great Wave")]
    results += [
        check("several layers: the run succeeds", found["several_run"]["status"] == "success",
              str(found["several_run"])),
        check("several layers: two layers added", len(several_after) == len(several_before) + 2,
              "%d -> %d" % (len(several_before), len(several_after))),
        check("several layers: a styled layer directly above each selected layer",
              all(names_after[names_after.index(name) - 1].startswith("Styled: Great Wave")
                  for name in ("Photo", "Background")), str(names_after)),
        check("several layers: each has its target's size",
              sorted(layer["size"] for layer in styled)
              == sorted(layer["size"] for layer in several_before
                        if layer["name"] in ("Photo", "Background"))),
        check("several layers: two result layers, each shown in its own layer",
              len(set(line["layer"] for line in found["several_log"]
                      if line["what"] == "result")) == 2),
        check("temp folder clean at the end", found["run_folders_at_end"] == []),
    ]
    failed = failed_labels(results)
    if failed:
        print(gimp_output[-3000:])
    assert failed == []


def process_running(pid):
    """True while pid runs; an exited process waiting to be reaped (a zombie) counts as gone."""
    try:
        stat = Path("/proc/%d/stat" % pid).read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_layer_cases_in_real_gimp3(gimp_session):
    session = gimp_session
    env = dict(session["env"], params=scenario_params(session, "cases"))
    found, gimp_output = run_gimp(session["kind"], session["root"], session["home"],
                                  session["work_dir"], env, "cases")
    cases = found["cases"]
    print("checks of layer cases (real GIMP 3, engine: %s):" % session["engine"])
    gray = cases["gray"]
    masked = cases["masked_target"]
    masked_names = [layer["name"] for layer in masked["after"]]
    target_after = [layer for layer in masked["after"] if layer["name"] == "Photo"]
    results = [
        check("grayscale image: styled, one new grayscale layer",
              gray["status"] == "success" and len(gray["after"]) == gray["layers_before"] + 1
              and gray["after"][1]["name"] == "Styled: Great Wave" and gray["new_layer_is_gray"],
              "%s, %s" % (gray["status"], gray.get("message"))),
        check("target with a layer mask: styled, the target keeps its mask, the new layer has none",
              masked["status"] == "success" and "Styled: Great Wave" in masked_names
              and target_after and target_after[0]["has_mask"]
              and not masked["after"][masked_names.index("Styled: Great Wave")]["has_mask"],
              "%s, %s" % (masked["status"], masked.get("message"))),
    ]
    refusals = [("indexed", "indexed image", "Image > Mode > RGB"),
                ("group_as_target", "layer group as the target", "layer group"),
                ("mask_as_target", "layer mask as the target", "layer mask is active"),
                ("channel_as_target", "channel as the target", "channel is active"),
                ("group_as_style", "layer group as the style", "is a layer group")]
    for key, label, words in refusals:
        case = cases[key]
        results.append(check("%s: refused with a clear message, image unchanged" % label,
                             case["status"] != "success" and words in (case["message"] or "")
                             and case["unchanged"], case["message"]))
    results.append(check("no run folder left in the temp folder",
                         found["run_folders_at_end"] == []))
    failed = failed_labels(results)
    if failed:
        print(gimp_output[-3000:])
    assert failed == []


# Enough steps for the untrained network's style loss to move each region's colour to its flat
# style's (8 are not: the colours barely move); about 5 s a run at 64 px.
REGION_ITERATIONS = 30


def test_regions_in_real_gimp3(gimp_session):
    """Two channels, two flat style layers (red, blue) and an offset target: one new layer whose
    upper half (the red style's channel) is redder than its lower half (the blue style's), and the
    reverse for blue; Repeat runs; a channel of another size is refused with the image as it was;
    then the selection, a layer's alpha and a layer mask (each in its own coordinates) as the red
    region with blue taking the rest pass the same colour check.
    (Headless, GIMP keeps no last values after a PDB call, so Repeat here runs the defaults: that it
    repeats the same regions is tests/gimp3/test_gimp3_gui_regions.py's.) The colour check fails if
    the masks are ignored (both halves alike) or swapped (the signs turn)."""
    session = gimp_session
    params = dict(scenario_params(session, "regions"), region_iterations=REGION_ITERATIONS)
    found, gimp_output = run_gimp(session["kind"], session["root"], session["home"],
                                  session["work_dir"], dict(session["env"], params=params), "regions")
    run, repeat, refusal = found.get("run", {}), found.get("repeat_run", {}), found.get("refusal", {})
    before, after = found.get("before", []), found.get("after", [])
    print("checks of regions (real GIMP 3, engine: %s):" % session["engine"])

    def redder_up(halves):
        """(upper R-B) - (lower R-B): large and positive when red paints above and blue below."""
        if not halves:
            return None
        (upper, lower) = halves
        return (upper[0] - upper[2]) - (lower[0] - lower[2])

    content = redder_up(found.get("content_halves"))
    results = [
        check("no errors in the batch code", found["errors"] == [], "%s" % found["errors"]),
        check("a run with two channel regions succeeds", run.get("status") == "success", "%s" % run),
        check("it adds one layer, 'Styled: Red, Blue'",
              len(after) == len(before) + 1 and after[1]["name"] == "Styled: Red, Blue"
              and after[1]["size"] == TARGET_SIZE and after[1]["offsets"] == TARGET_OFFSETS
              and not after[1]["has_mask"], "%s" % [layer["name"] for layer in after]),
        check("Repeat runs again and adds one more layer", repeat.get("status") == "success"
              and len(found.get("after_repeat", [])) == len(after) + 1, "%s" % repeat),
        check("a channel of another image size is refused with a message",
              refusal.get("status") != "success" and "another image size" in (refusal.get("message") or ""),
              "%s" % refusal),
        check("... and the image is as it was", found.get("before_refusal") == found.get("after_refusal")
              and found.get("channels_before_refusal") == found.get("channels_after_refusal")),
        check("no run folder left", found.get("run_folders_at_end") == []),
    ]
    for kind in ("selection", "alpha", "layer_mask"):
        kind_run = found.get("%s_run" % kind) or {}
        results.append(check("the %s as the red region, blue the rest: one layer without a mask"
                             % kind.replace("_", " "), kind_run.get("status") == "success"
                             and found.get("%s_has_mask" % kind) is False, "%s" % kind_run))
    if session["engine"] == "real":
        for key in ("halves", "selection_halves", "alpha_halves", "layer_mask_halves"):
            shift = redder_up(found.get(key))
            # the photo's own halves differ little (content); red above and blue below add > 100
            results.append(check("%s: the upper region is red, the lower blue (R-B shift %s, photo %s)"
                                 % (key, shift and round(shift), content and round(content)),
                                 shift is not None and shift - content > 100, "%s" % found.get(key)))
    failed = failed_labels(results)
    if failed:
        print(gimp_output[-3000:])
    assert failed == []


def plugin_process_of(engine_record):
    """The plug-in process that started the fake engine, if it is ours to stop."""
    record = json.loads(engine_record.read_text())
    pid = record["ppid"]
    try:
        cmdline = Path("/proc/%d/cmdline" % pid).read_bytes()
    except OSError:
        return None, record
    return (pid if b"nst_style_transfer.py" in cmdline else None), record


def test_cancelled_run_stops_the_engine_and_leaves_no_layer_in_real_gimp3(gimp_session):
    """GIMP cancels a plug-in by killing its process; here the test kills it the same way."""
    if sys.platform.startswith("win") or not Path("/proc").is_dir():
        pytest.skip("needs /proc to find the plug-in process")
    session = gimp_session
    work_dir = session["work_dir"]
    record = work_dir / "cancel-engine-record.json"
    marker = work_dir / "cancel-engine-stopped"
    mode_file = work_dir / "cancel-engine-mode"
    mode_file.write_text("hang")
    params = dict(scenario_params(session, "cancel"), mode_file=str(mode_file))
    env = dict(session["env"], params=params,
               NST_ENGINE_PYTHON=write_fake_engine(str(work_dir / "cancel-fake-python")),
               FAKE_ENGINE_MODE_FILE=str(mode_file), FAKE_ENGINE_RECORD=str(record),
               FAKE_ENGINE_MARKER=str(marker))
    process, output, log = start_gimp(session["kind"], session["root"], session["home"], work_dir,
                                      env, "cancel")
    killed = None
    try:
        deadline = time.time() + 300
        while time.time() < deadline and process.poll() is None:
            if record.exists() and record.stat().st_size:
                plugin_pid, engine = plugin_process_of(record)
                if engine.get("mode") == "hang" and plugin_pid:
                    time.sleep(1.0)  # let it reach the progress loop
                    os.kill(plugin_pid, signal.SIGKILL)
                    killed = (plugin_pid, engine["pid"])
                    break
            time.sleep(0.1)
        stop_deadline = time.time() + 30
        while killed and not marker.exists() and time.time() < stop_deadline:
            time.sleep(0.1)
    finally:
        found, gimp_output = finish_gimp(process, output, log)
    print("checks after cancelling a run (real GIMP 3, fake engine waiting on stdin):")
    before = found["before"]
    engine_gone = killed is not None and not process_running(killed[1])
    results = [
        check("the plug-in process was found and killed mid-run", killed is not None,
              "plug-in pid %s, engine pid %s" % (killed or (None, None))),
        check("the engine noticed its stdin closing and stopped", marker.exists() and engine_gone,
              "marker %s, engine %s" % (marker.exists(), "gone" if engine_gone else "running")),
        check("the killed run returned an error status",
              found["killed_run"]["status"] != "success", str(found["killed_run"])),
        check("no partial layer: the stack is as it was", found["after_killed_run"] == before),
        check("the killed run's folder was left behind (it could not clean up)",
              len(found["run_folders_after_kill"]) == 1, str(found["run_folders_after_kill"])),
        check("the next run succeeds", found["next_run"]["status"] == "success",
              str(found["next_run"])),
        check("... adds its layer", len(found["after_next_run"]) == len(before) + 1),
        check("... and swept the dead run's folder", found["run_folders_at_end"] == [],
              str(found["run_folders_at_end"])),
    ]
    failed = failed_labels(results)
    if failed:
        print(gimp_output[-3000:])
    assert failed == []


# The animation: 6 frames panning across the photo, smaller than the 96x72 canvas and offset, named
# with GIMP's animation tags (frame 1 at the bottom); styled at a 32 px working size.
FRAME_NAMES = ["Frame 1 (100ms) (replace)", "Frame 2 (100ms)", "Frame 3 (200ms) (combine)",
               "Frame 4 (100ms)", "Frame 5", "Frame 6 (300ms) (replace)"]
FRAME_SIZE, FRAME_OFFSETS = [64, 48], [16, 12]
FRAMES_WORKING_SIZE = 32


def write_frames(folder):
    from PIL import Image
    photo = Image.open(REPO / "examples" / "chelsea.png").convert("RGB").resize((120, 80))
    paths = []
    for index in range(len(FRAME_NAMES)):
        paths.append(str(folder / ("frame-%d.png" % (index + 1))))
        photo.crop((4 * index, 8, 4 * index + 64, 56)).save(paths[-1])
    return paths


def frames_params(session, preview_log, **extra):
    frames_dir = session["work_dir"] / "frames"
    frames_dir.mkdir(exist_ok=True)
    return dict(scenario_params(session, "frames"), size=FRAMES_WORKING_SIZE,
                frame_files=write_frames(frames_dir), frame_names=FRAME_NAMES,
                frame_size=FRAME_SIZE, frame_offsets=FRAME_OFFSETS, temporal_weight=150.0,
                preview_log=str(preview_log), **extra)


def new_frames_image_checks(found):
    """The checks of the new image the first frames run makes (the process and the service runs)."""
    before, new_images = found["before"], found["new_images"]
    new = new_images[0]["layers"] if len(new_images) == 1 else []
    top_first = list(reversed(FRAME_NAMES))
    return new, [
        check("the source has the 6 frames, frame 1 at the bottom",
              [layer["name"] for layer in before] == top_first),
        check("the run succeeds", found["run"]["status"] == "success", str(found["run"])),
        check("it makes one new image, of the source's canvas size",
              len(new_images) == 1 and new_images[0]["size"] == [96, 72],
              str([(image["size"], len(image["layers"])) for image in new_images])),
        check("6 layers with the frames' names (delay and combine tags kept), in the frames' order",
              [layer["name"] for layer in new] == top_first, str([layer["name"] for layer in new])),
        check("each with its frame's size and offsets",
              all(layer["size"] == FRAME_SIZE and layer["offsets"] == FRAME_OFFSETS for layer in new)
              and len(new) == 6, str([(layer["size"], layer["offsets"]) for layer in new])),
        check("their pixels are styled (not the frames' own)",
              len(new) == 6 and all(layer["pixels_sha1"] != frame["pixels_sha1"]
                                    for layer, frame in zip(new, before))),
        check("the source image is untouched (names, order, sizes, offsets, pixels)",
              found["after"] == before),
        check("the style image is untouched", found["style_after"] == found["style_before"]),
        check("no run folder left after the run", found["run_folders_after_run"] == []),
    ]


def test_frames_make_a_new_image_in_real_gimp3(gimp_session):
    """python-fu-nst-style-transfer-frames on a 6-frame animation in a real GIMP 3: a new image with 6
    layers of the frames' names (tags and all), sizes, offsets and order, its pixels styled, the
    frames filling in as previews (one layer more per frame); the source untouched; three selected
    frames make a 3-layer image; a frame as the style is refused. With the real engine also: the
    engine stopped (SIGUSR1) during frame 2 leaves a new image of frames 1 and 2, cancelled
    (SIGTERM) none."""
    session = gimp_session
    work_dir = session["work_dir"]
    preview_log = work_dir / "frames-preview-log.jsonl"
    params = frames_params(session, preview_log, live=session["engine"] == "real",
                           live_iterations=LIVE_ITERATIONS)
    env = dict(session["env"], NST_PREVIEW_EVERY="0.5", NST_PREVIEW_LOG=str(preview_log),
               params=params)
    found, gimp_output = run_gimp(session["kind"], session["root"], session["home"], work_dir, env,
                                  "frames")
    print("checks of the animation's procedure (real GIMP 3, engine: %s):" % session["engine"])
    registration = found["frames_registration"]
    results = [
        check("procedure %s registers" % FRAMES_PROCEDURE, registration["registered"]),
        check("menu <Image>/Filters/Animation, label 'Neural Style Transfer (frames)...'",
              registration.get("menu_paths") == ["<Image>/Filters/Animation"]
              and registration.get("menu_label") == "Neural Style Transfer (frames)...",
              "%s %s" % (registration.get("menu_paths"), registration.get("menu_label"))),
        check("arguments are %s" % ", ".join(GIMP3_FRAMES_ARGUMENTS),
              registration.get("arguments") == REGISTERED_FRAMES_ARGUMENTS,
              str(registration.get("arguments"))),
    ]
    before = found["before"]
    new, new_checks = new_frames_image_checks(found)
    results += new_checks
    log = found["run_log"]
    previews = [line for line in log if line["what"] == "preview"]
    results_lines = [line for line in log if line["what"] == "result"]
    first_preview_layers = dict((line["frame"], line["layers"]) for line in reversed(previews))
    results += [
        check("previews came for every frame, each in its frame's layer",
              sorted(first_preview_layers) == [1, 2, 3, 4, 5, 6]
              and all(len(set(line["layer"] for line in log if line["frame"] == frame)) == 1
                      for frame in range(1, 7)), str(sorted(first_preview_layers))),
        check("the new image grew a layer per frame during the run",
              [first_preview_layers.get(frame) for frame in range(1, 7)] == [1, 2, 3, 4, 5, 6],
              str(first_preview_layers)),
        check("the results went into those layers (the final pixels are the results')",
              len(results_lines) == 6 and len(new) == 6 and sorted(line["sha1"] for line in results_lines)
              == sorted(layer["pixels_sha1"] for layer in new)),
    ]
    selected = found["selected_new_images"]
    results += [
        check("three selected frames: the run succeeds", found["selected_run"]["status"] == "success",
              str(found["selected_run"])),
        check("... a new image of those 3, bottom first",
              len(selected) == 1 and [layer["name"] for layer in selected[0]["layers"]]
              == [FRAME_NAMES[4], FRAME_NAMES[2], FRAME_NAMES[1]],
              str([[layer["name"] for layer in image["layers"]] for image in selected])),
        check("a frame as the style: refused with a message, no image made, the source as it was",
              found["refusal"]["status"] == "execution-error"
              and "is frame 2 of the animation" in (found["refusal"]["message"] or "")
              and found["refusal_new_images"] == [] and found["after_refusal"] == before,
              str(found["refusal"])),
    ]
    if params["live"]:
        stop_images = found["stop_new_images"]
        stop_log = found["stop_log"]
        results += [
            check("stop: SIGUSR1 reached the engine during frame 2", bool(found["stop_signal"].get("pids")),
                  str(found["stop_signal"])),
            check("stop: the run succeeds", found["stop_run"]["status"] == "success", str(found["stop_run"])),
            check("stop: a new image with frames 1 and 2 only",
                  len(stop_images) == 1 and [layer["name"] for layer in stop_images[0]["layers"]]
                  == [FRAME_NAMES[1], FRAME_NAMES[0]],
                  str([[layer["name"] for layer in image["layers"]] for image in stop_images])),
            check("stop: their pixels are the results shown",
                  len(stop_images) == 1 and sorted(layer["pixels_sha1"] for layer in stop_images[0]["layers"])
                  == sorted(line["sha1"] for line in stop_log if line["what"] == "result")),
            check("stop: the source untouched", found["stop_source_after"] == before),
        ]
        cancel_log = found["cancel_log"]
        results += [
            check("cancel: SIGTERM reached the engine once frame 2 showed in the new image",
                  bool(found["cancel_signal"].get("pids"))
                  and any(line["frame"] == 2 and line["layers"] == 2 for line in cancel_log),
                  str(found["cancel_signal"])),
            check("cancel: error status that says cancelled",
                  found["cancel_run"]["status"] == "execution-error"
                  and "ancel" in (found["cancel_run"]["message"] or ""), str(found["cancel_run"])),
            check("cancel: no new image is left", found["cancel_new_images"] == [],
                  str(found["cancel_new_images"])),
            check("cancel: the source untouched", found["cancel_source_after"] == before),
        ]
    results += [
        check("temp folder clean at the end", found["run_folders_at_end"] == [],
              str(found["run_folders_at_end"])),
    ]
    log_file = Path(session["config"]["log_dir"]) / "nst_engine.log"
    commands = [line for line in (log_file.read_text().splitlines() if log_file.exists() else [])
                if " -m nst_core stylize-frames " in line]
    last = commands[0].split() if commands else []
    results.append(check("one stylize-frames engine process per run, the 6 frames in order, the "
                         "temporal weight and working size passed",
                         len([word for word in last if word.endswith(".png") and "/frame-" in word]) == 6
                         and "--temporal-weight" in last and last[last.index("--temporal-weight") + 1]
                         == "150.0" and last[last.index("--size") + 1] == str(FRAMES_WORKING_SIZE),
                         " ".join(last)))
    failed = failed_labels(results)
    if failed:
        print(gimp_output[-3000:])
    assert failed == []


def test_frames_through_a_local_service_in_real_gimp3(gimp_session):
    """engine_service "local" (the installer's default): the animation's frames go to the warm
    service as one frame job each, and the same new image arrives."""
    session = gimp_session
    if session["engine"] != "real":
        pytest.skip("the local service needs the real engine (the fake one knows only the command line)")
    work_dir = session["work_dir"]
    preview_log = work_dir / "frames-service-preview-log.jsonl"
    env = dict(session["env"], NST_ENGINE_SERVICE="local", NST_PREVIEW_EVERY="0.5",
               NST_PREVIEW_LOG=str(preview_log),
               params=frames_params(session, preview_log, first_run_only=True))
    log_dir = Path(session["config"]["log_dir"])
    state_file = log_dir / "nst_service-cpu.json"
    log_file = log_dir / "nst_engine.log"
    log_before = log_file.read_text() if log_file.exists() else ""
    try:
        found, gimp_output = run_gimp(session["kind"], session["root"], session["home"], work_dir,
                                      env, "frames-service")
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        print("checks of the animation's procedure through the local service (real GIMP 3):")
        new, results = new_frames_image_checks(found)
        log = log_file.read_text()[len(log_before):]
        url = state.get("url", "?")
        results += [
            check("six frame jobs went to the service (outcome lines)",
                  log.count("outcome: done via %s" % url) == 6, str(state)),
            check("each with the sequence and the temporal weight",
                  log.count('"temporal-weight": 150.0') == 6 and log.count('"sequence": "gimp-') == 6),
            check("no engine process was started for them", " -m nst_core stylize-frames " not in log),
            check("the previews filled the frames in", sorted(set(
                line["frame"] for line in found["run_log"] if line["what"] == "preview"))
                == [1, 2, 3, 4, 5, 6]),
        ]
        failed = failed_labels(results)
        if failed:
            print(gimp_output[-3000:])
        assert failed == []
    finally:
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        if state.get("pid"):
            try:
                os.kill(state["pid"], signal.SIGTERM)
            except OSError:
                pass
