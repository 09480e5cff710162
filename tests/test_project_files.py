"""The files a newcomer reads first tell the truth: the licence, the README's layout, set-up and tests."""

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_licence_file_is_the_one_pyproject_names():
    declared = re.search(r'^license\s*=\s*"([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    licence = (REPO / "LICENSE").read_text()
    assert declared == "MIT" and licence.startswith("MIT License\n")
    assert "Copyright (c) 2026 nst-core contributors" in licence
    assert "THE SOFTWARE IS PROVIDED \"AS IS\"" in licence


def test_the_readme_layout_names_every_top_level_folder_and_doc():
    readme = (REPO / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
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


def test_the_readme_says_what_a_newcomer_needs():
    readme = (REPO / "README.md").read_text()
    setup = readme[readme.index("## Set-up"):readme.index("## In GIMP")]
    assert setup.splitlines()[2].split("#")[0].strip() == "python3 installer/install.py --demo"
    assert "5.5 GB with CUDA wheels" in setup  # the engine's venv
    assert "without GIMP" in setup and "code 3" in setup
    assert "--weights-format caffe|torchvision" in setup and "vgg16-397923af.pth" in setup
    assert "NST_TEST_WEIGHTS" in setup
