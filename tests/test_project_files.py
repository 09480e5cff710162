"""The files a newcomer reads first tell the truth: the licence, the README's layout, commands, figures and links."""

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_the_licence_file_is_the_one_pyproject_names():
    declared = re.search(r'^license\s*=\s*"([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    licence = (REPO / "LICENSE").read_text()
    assert declared == "MIT" and licence.startswith("MIT License\n")
    assert "Copyright (c) 2026 nst-core contributors" in licence
    assert "THE SOFTWARE IS PROVIDED \"AS IS\"" in licence


def test_the_readme_layout_names_every_top_level_folder_and_doc():
    layout = README[README.index("## Layout"):]
    listed = set(re.findall(r"^\| `([^`]+)` \|", layout, re.M))
    # The tracked tree, not the disk: build outputs and egg-info are ignored and not the project's.
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    if tracked:
        folders = {path.split("/")[0] + "/" for path in tracked if "/" in path and not path.startswith(".")}
    else:  # not a git checkout (an unpacked archive): the folders on disk
        folders = {p.name + "/" for p in REPO.iterdir() if p.is_dir() and not p.name.startswith(".")}
    docs = {"docs/" + p.name for p in (REPO / "docs").glob("*.md")}
    assert folders - {"docs/"} <= listed, folders - listed
    assert docs <= listed, docs - listed
    assert "LICENSE" in listed


def _setup_commands():
    setup = README[README.index("## Set-up"):README.index("## In GIMP")]
    return [line.split("#")[0].strip() for line in setup.splitlines() if line.startswith("    ")]


def test_the_readmes_two_setup_commands_exist_and_take_their_options():
    install, tests = _setup_commands()
    assert install.split()[:2] == ["python3", "installer/install.py"] and tests == "./tests/run"
    assert (REPO / "tests" / "run").stat().st_mode & 0o111, "tests/run is not executable"
    # Every option the README gives the installer is one its parser knows (--help lists them).
    helped = subprocess.run([sys.executable, str(REPO / "installer" / "install.py"), "--help"],
                            capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0, helped.stderr
    setup = README[README.index("## Set-up"):README.index("## In GIMP")]
    options = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", setup))
    assert options, "the README names no installer option"
    for option in options:
        assert re.search(r"(^|[\s,])%s\b" % re.escape(option), helped.stdout, re.M), option


def test_the_readmes_engine_commands_exist():
    engine = README[README.index("## The engine on its own"):README.index("## Speed")]
    subcommands = set(re.findall(r"^    nst-core (\w+)", engine, re.M))
    assert {"stylize", "doctor", "serve"} <= subcommands
    helped = subprocess.run([sys.executable, "-m", "nst_core", "--help"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0, helped.stderr
    for name in subcommands:
        assert re.search(r"\b%s\b" % name, helped.stdout), (name, helped.stdout)
    stylize_help = subprocess.run([sys.executable, "-m", "nst_core", "stylize", "--help"], cwd=REPO,
                                  capture_output=True, text=True, timeout=120).stdout
    for option in set(re.findall(r"^    nst-core stylize .*", engine, re.M)):
        for flag in re.findall(r"(--[a-z-]+)", option):
            assert flag in stylize_help, flag


def test_the_readmes_speed_table_is_the_benchmarks_measurement():
    measured = json.loads((REPO / "benchmarks" / "time_to_good.json").read_text())["sizes"]
    speed = README[README.index("## Speed"):README.index("## What works")]
    rows = re.findall(r"^\| (\d+) px[^|]*\|(.*)\|$", speed, re.M)
    assert sorted(size for size, _ in rows) == sorted(measured), rows
    for size, cells in rows:
        for method, cell in zip(("standard", "fast", "strong"), cells.split("|")):
            run = measured[size][method]
            good = re.search(r"good after ([\d.]+) s", cell)
            if run["good_at_seconds"] is None:
                assert not good and "not good in %d s" % round(run["seconds"]) in cell, (size, method, cell)
            else:
                assert good and float(good.group(1)) == round(run["good_at_seconds"], 1), (size, method, cell)
            done = re.search(r"done in (\d+) s", cell)
            if done:
                assert int(done.group(1)) == round(run["seconds"]), (size, method, cell)
    assert "benchmarks/README.md" in speed
    benchmarks = (REPO / "benchmarks" / "README.md").read_text()
    for size, cells in rows:
        for figure in re.findall(r"([\d.]+) s", cells):
            assert figure in benchmarks, figure  # the reference carries the same figures


def _relative_links(path):
    text = path.read_text()
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # code blocks hold commands, not links
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if not re.match(r"[a-z]+:", target) and not target.startswith("#"):
            yield target.split("#")[0]


def test_every_relative_link_in_the_readme_and_docs_resolves():
    pages = [REPO / "README.md", REPO / "benchmarks" / "README.md"] + sorted((REPO / "docs").glob("*.md"))
    checked = 0
    for page in pages:
        for target in _relative_links(page):
            assert (page.parent / target).exists(), "%s links to %s, which is not there" % (
                page.relative_to(REPO), target)
            checked += 1
    assert checked >= 5, "the README and docs link to each other; no link was found"


def test_the_docs_the_readme_sends_readers_to_exist():
    for doc in re.findall(r"`((?:docs|benchmarks|examples|tests)/[\w./-]+)`", README):
        assert (REPO / doc).exists(), doc
