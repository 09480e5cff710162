"""``--dry-run``: check what the real run will need from outside this machine (the package index, the
weights' source) and say plainly what a dry run cannot check.

Each look is a HEAD request with a short timeout, so an offline machine hears about it in seconds.
"""

from __future__ import annotations

import os
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional

from .engine import WEIGHTS_DOWNLOADS
from .errors import ExitCode, InstallError
from .plan import InstallPlan

PYPI = "https://pypi.org/simple"
LOOK_TIMEOUT_S = 5.0


def url_reachable(url: str, timeout: float = LOOK_TIMEOUT_S) -> bool:
    """Whether ``url`` answers at all (any HTTP status below 500 but 407); a file URL or a plain path:
    whether it exists."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("", "file") or len(parsed.scheme) == 1:  # a path (a Windows drive letter too)
        path = urllib.request.url2pathname(parsed.path) if parsed.scheme == "file" else url
        return os.path.exists(path)
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
        return True
    except urllib.error.HTTPError as error:
        return error.code < 500 and error.code != 407  # 407: a proxy that wants credentials
    except (urllib.error.URLError, OSError, ValueError):
        return False


@dataclass
class PipSources:
    index_url: str = PYPI
    extra: List[str] = field(default_factory=list)  # extra-index-url and find-links entries
    note: str = ""  # why pip's configuration could not be read, if it could not


def _config_values(listing: str) -> Dict[str, str]:
    """``pip config list`` lines (``global.index-url='...'``, ``:env:.find-links='...'``) by key; the
    environment beats a command's section, which beats ``global`` (pip's own order)."""
    rank = {":env:": 0, "install": 1, "global": 2}
    best: Dict[str, tuple] = {}
    for line in listing.splitlines():
        key, sep, value = line.partition("=")
        if not sep or "." not in key:
            continue
        section, _, name = key.rpartition(".")
        order = rank.get(section, 3)
        if name not in best or order < best[name][0]:
            best[name] = (order, value.strip().strip("'\""))
    return {name: value for name, (_, value) in best.items()}


def pip_sources(python: Path, env: Mapping[str, str]) -> PipSources:
    """Where pip will look for packages: PIP_INDEX_URL, else pip's configured index-url, else PyPI."""
    sources = PipSources()
    values: Dict[str, str] = {}
    try:
        listing = subprocess.run([str(python), "-m", "pip", "config", "list"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=60, check=False,
                                 env=dict(env))
        if listing.returncode == 0:
            values = _config_values(listing.stdout.decode("utf-8", "replace"))
        else:
            sources.note = "`%s -m pip config list` failed, so pip's configuration was not read" % python
    except (OSError, subprocess.SubprocessError) as error:
        sources.note = "pip's configuration was not read (%s)" % error
    sources.index_url = env.get("PIP_INDEX_URL") or values.get("index-url") or PYPI
    for name in ("extra-index-url", "find-links"):
        sources.extra += (env.get("PIP_" + name.upper().replace("-", "_")) or values.get(name) or "").split()
    return sources


@dataclass
class CheckResult:
    lines: List[str] = field(default_factory=list)
    failures: List[str] = field(default_factory=list)

    def ok(self, text: str) -> None:
        self.lines.append("  ok           " + text)

    def failed(self, text: str) -> None:
        self.lines.append("  FAILED       " + text)
        self.failures.append(text)

    def unchecked(self, text: str) -> None:
        self.lines.append("  not checked  " + text)


def _check_pip(plan: InstallPlan, env: Mapping[str, str], result: CheckResult) -> None:
    engine = plan.engine
    python = engine.python if engine.python.exists() else engine.base_python
    sources = pip_sources(python, env)
    if sources.note:
        result.unchecked(sources.note + "; PIP_INDEX_URL or PyPI assumed")
    if url_reachable(sources.index_url):
        result.ok("pip's index %s answers" % sources.index_url)
    else:
        answering = [source for source in sources.extra if url_reachable(source)]
        if answering:
            result.ok("pip's index %s does not answer, but its other sources do: %s (not checked: that "
                      "they hold every package)" % (sources.index_url, ", ".join(answering)))
        else:
            result.failed("pip's index %s cannot be reached%s: pip cannot install the engine"
                          % (sources.index_url, " (nor %s)" % ", ".join(sources.extra) if sources.extra else ""))
    torch = engine.torch
    if torch is not None and torch.index_url:
        if url_reachable(torch.index_url):
            result.ok("torch's index %s answers" % torch.index_url)
        elif torch.fallback_to_default:
            result.ok("torch's index %s cannot be reached: the real run takes torch from pip's index "
                      "instead (a larger download on Linux)" % torch.index_url)
        else:
            result.failed("torch's index %s cannot be reached" % torch.index_url)
    result.unchecked("that pip finds torch wheels for this Python and platform, and the disk space "
                     "(the engine's venv takes about 5.5 GB with CUDA wheels)")


def _check_weights(plan: InstallPlan, weights_url: Optional[str], result: CheckResult) -> None:
    weights = plan.weights
    if weights.mode == "import":
        result.ok("the weights file %s is there (%.1f MB)" % (weights.file, weights.file.stat().st_size / 1e6))
        result.unchecked("whether it holds weights the engine can use, and their preprocessing (the engine "
                         "checks both when it imports the file)")
    elif weights.mode == "fetch":
        url = weights_url or WEIGHTS_DOWNLOADS[weights.backbone or "vgg19"][0]
        if url_reachable(url):
            result.ok("the weights' download %s answers" % url)
        elif plan.engine.python.exists():
            result.unchecked("whether the engine already has its weights (the real run asks it and downloads "
                             "only if not): the download %s cannot be reached" % url)
        else:
            result.failed("the weights' download %s cannot be reached" % url)


def dry_run_checks(plan: InstallPlan, env: Mapping[str, str], weights_url: Optional[str] = None) -> List[str]:
    """The checks' lines; raises an :class:`InstallError` naming what would stop the real run."""
    result = CheckResult()
    if plan.engine.venv_dir is not None:
        _check_pip(plan, env, result)
    else:
        result.unchecked("that the engine at %s starts (the real run asks it: -m nst_core doctor --json)"
                         % plan.engine.python)
    _check_weights(plan, weights_url, result)
    if plan.demo:
        result.unchecked("the demo run itself")
    lines = ["", "Checks:"] + result.lines
    if result.failures:
        print("\n".join(lines), flush=True)
        hint = "Nothing was changed."
        if any("weights" in failure for failure in result.failures):
            url, filename = WEIGHTS_DOWNLOADS[plan.weights.backbone or "vgg19"]
            hint = ("Offline: get %s (%s) elsewhere and give it with --weights FILE (a file the engine does "
                    "not recognise also needs --weights-format caffe|torchvision), or install without the "
                    "weights (--no-weights). " % (filename, url)) + hint
        raise InstallError(ExitCode.NO_NETWORK, "the dry run found what would stop the real run:\n  "
                           + "\n  ".join(result.failures), hint)
    return lines
