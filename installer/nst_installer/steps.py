"""Carrying out an install plan: engine, weights, plug-in folders, then the manifest.

The order is chosen so that a failure leaves as little as possible: the plug-in folders, the only thing
GIMP looks at, come last and appear all at once. What a failed run keeps on purpose (the pip log; a venv
that took minutes to fill, once the engine in it works) is recorded in the manifest, so
``--uninstall`` still removes it.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Set

from . import engine as engine_steps
from .errors import ExitCode, InstallError
from .manifest import Changes, Manifest, PluginFolderRecord, load_manifest, merge, save_manifest
from .plan import InstallPlan
from .plugin_files import (
    FolderInstall,
    engine_config,
    install_plugin_folders,
    make_dirs_recorded,
    plugin_sources,
    remove_empty_dirs,
)
from .torch_choice import TorchSource, index_reachable


def say(text: str) -> None:
    print(text, flush=True)


@dataclass
class InstallReport:
    """What an install did, for the summary."""

    plan: InstallPlan
    doctor: Dict[str, object] = field(default_factory=dict)
    venv_action: Optional[str] = None  # "created", "updated", or None with --engine-python
    torch_source: Optional[TorchSource] = None  # what pip actually used
    torch_note: Optional[str] = None  # e.g. why PyTorch's own index was not used
    weights: str = "skipped"  # "fetched", "imported" or "skipped"
    weights_file: Optional[Path] = None  # the engine's copy, when it says where
    folders: List[FolderInstall] = field(default_factory=list)
    log_file: Optional[Path] = None


def execute_install(plan: InstallPlan, verbose: bool = False) -> InstallReport:
    previous = load_manifest(plan.manifest_path)
    changes = Changes(engine_python=plan.engine.python)
    report = InstallReport(plan)
    engine_ready = False
    try:
        _prepare_engine(plan, previous, changes, report, verbose)
        engine_ready = True
        _prepare_weights(plan, changes, report)
        if plan.targets:  # none with --no-gimp
            _install_plugin(plan, previous, changes, report)
        make_dirs_recorded(plan.logs_dir, changes.created_dirs)  # where the plug-in writes its logs
    except InstallError as error:
        if engine_ready and report.venv_action:
            error.hint = ((error.hint + "\n") if error.hint else "") + (
                "GIMP's plug-in folders were not changed. The engine's environment %s is kept, so running this "
                "again is quick (--uninstall removes it)." % plan.engine.venv_dir)
        raise
    finally:
        _record(plan, previous, changes)
    return report


def _record(plan: InstallPlan, previous: Optional[Manifest], changes: Changes) -> None:
    if changes.is_empty():
        return  # nothing was created (e.g. the engine check failed first): leave no record either
    make_dirs_recorded(plan.manifest_path.parent, changes.created_dirs)
    save_manifest(plan.manifest_path, merge(previous, changes, plan.project_version))


# --- the engine ------------------------------------------------------------------------------------------

def _prepare_engine(plan: InstallPlan, previous: Optional[Manifest], changes: Changes,
                    report: InstallReport, verbose: bool) -> None:
    engine = plan.engine
    if engine.venv_dir is None:
        say("Checking the engine %s ..." % engine.python)
        report.doctor = engine_steps.check_engine(engine.python)
        return

    make_dirs_recorded(plan.logs_dir, changes.created_dirs)
    log_path = plan.logs_dir / ("install-%s.log" % time.strftime("%Y%m%d-%H%M%S"))
    changes.created_files.append(log_path)
    report.log_file = log_path
    log = engine_steps.CommandLog(log_path, echo_everything=verbose)

    venv_dir = engine.venv_dir
    reuse = engine.python.exists()
    venv_dir_existed = venv_dir.exists()
    venv_parents_created: List[Path] = []
    try:
        if reuse:
            say("Updating the engine's virtual environment %s ..." % venv_dir)
        else:
            say("Creating the engine's virtual environment %s ..." % venv_dir)
            make_dirs_recorded(venv_dir.parent, venv_parents_created)
            engine_steps.create_venv(engine.base_python, venv_dir, log)
        source = _reachable_torch_source(engine.torch, report)
        switching = reuse and previous is not None and previous.torch_variant not in (None, source.variant)
        say("Installing %s (the largest step: it can take several minutes) ..." % source.describe())
        engine_steps.pip_install(engine.python, engine_steps.torch_install_args(source.index_url, switching),
                                 "torch", log)
        say("Installing the engine nst-core %s ..." % plan.project_version)
        leftovers_before = build_leftovers(engine.project_dir)
        try:
            # With the serve extra (aiohttp): the plug-in's warm local service is `nst-core serve`.
            engine_steps.pip_install(engine.python, ["--upgrade", str(engine.project_dir) + "[serve]"],
                                     "the engine", log)
        finally:
            remove_build_leftovers(engine.project_dir, leftovers_before)
        say("Checking that the engine starts ...")
        report.doctor = engine_steps.check_engine(engine.python)
    except BaseException:
        if not reuse:
            _remove_new_venv(venv_dir, venv_dir_existed)
            remove_empty_dirs(venv_parents_created)
        raise
    changes.created_dirs.extend(venv_parents_created)
    report.venv_action = "updated" if reuse else "created"
    report.torch_source = source
    changes.torch_variant = source.variant
    if not reuse:
        changes.created_venv = venv_dir


def build_leftovers(project_dir: Path) -> Set[Path]:
    """What building the engine from its folder leaves there (setuptools builds in the source tree)."""
    return {path for path in [project_dir / "build"] + list(project_dir.glob("*.egg-info")) if path.is_dir()}


def remove_build_leftovers(project_dir: Path, there_before: Set[Path]) -> None:
    """Remove the build folders the pip step added to the project folder; keep those that were there."""
    for path in build_leftovers(project_dir) - there_before:
        shutil.rmtree(str(path), ignore_errors=True)


def _remove_new_venv(venv_dir: Path, folder_existed: bool) -> None:
    """Undo a venv this run created: all of it, or only its contents if the (empty) folder was there."""
    if not venv_dir.exists():
        return
    if folder_existed:
        for entry in venv_dir.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(str(entry), ignore_errors=True)
            else:
                entry.unlink()
        return
    shutil.rmtree(str(venv_dir), ignore_errors=True)


def _reachable_torch_source(source: TorchSource, report: InstallReport) -> TorchSource:
    """PyTorch's own index when it answers; PyPI's default wheel otherwise (with a message)."""
    if not source.index_url or not source.fallback_to_default or index_reachable(source.index_url):
        return source
    note = ("%s cannot be reached: installing PyPI's default torch wheel instead (%s)."
            % (source.index_url, "a CPU build on Windows" if report.plan.platform == "windows"
               else "a larger download: on Linux it bundles CUDA, and runs on the CPU as well"))
    say("Note: " + note)
    report.torch_note = note
    return TorchSource("default", None, False, "fallback: %s unreachable" % source.index_url)


# --- the weights -----------------------------------------------------------------------------------------

def _offline_hint(plan: InstallPlan) -> str:
    return engine_steps.offline_weights_advice(plan.weights.backbone, plan.engine.python)


def _files_in(folder: Optional[Path]) -> Set[Path]:
    return set(folder.iterdir()) if folder is not None and folder.is_dir() else set()


def _missing_folders(folder: Optional[Path]) -> List[Path]:
    """``folder`` and those of its parents that do not exist yet, outermost first."""
    missing: List[Path] = []
    current = folder
    while current is not None and not current.exists() and current.parent != current:
        missing.insert(0, current)
        current = current.parent
    return missing


def _weights_folder(plan: InstallPlan, report: InstallReport) -> Optional[Path]:
    """The engine's weights folder: doctor says where it is; an older engine's ``weights path`` shows it."""
    folder = report.doctor.get("weights_dir")
    if isinstance(folder, str) and folder:
        return Path(folder)
    weights = plan.weights
    expected = engine_steps.weights_file_path(plan.engine.python, weights.backbone, weights.weights_format)
    return expected.parent if expected is not None else None


def _prepare_weights(plan: InstallPlan, changes: Changes, report: InstallReport) -> None:
    weights = plan.weights
    if weights.mode == "skip":
        return
    if weights.mode == "fetch" and not weights.backbone and engine_steps.weights_ready(report.doctor):
        report.weights = "already there"  # a re-install (offline, too) keeps what the engine has
        return
    python = plan.engine.python
    # The engine keeps its trimmed copy (and its record of the active copy) in its own folder; note what
    # is there, so that what this run adds, folders included, is recorded (and --uninstall removes it)
    # while what was there already is not.
    weights_folder = _weights_folder(plan, report)
    folders_missing = _missing_folders(weights_folder)
    there_before = _files_in(weights_folder)
    if weights.mode == "import":
        say("Importing the weights from %s ..." % weights.file)
    else:
        say("Fetching the weights (once; later runs reuse them) ...")
    try:
        kept_copy = engine_steps.prepare_weights(python, weights.engine_args(), _offline_hint(plan))
    finally:
        changes.created_dirs.extend(folder for folder in folders_missing if folder.is_dir())
        if weights_folder is not None:
            changes.created_files.extend(sorted(path for path in _files_in(weights_folder) - there_before
                                                if path.is_file()))
    report.weights = "imported" if weights.mode == "import" else "fetched"
    report.weights_file = kept_copy
    if weights_folder is None and kept_copy is not None and kept_copy.is_file():
        changes.created_files.append(kept_copy)


# --- the plug-in -----------------------------------------------------------------------------------------

def _copy_server_token(plan: InstallPlan, changes: Changes) -> Dict[str, str]:
    """--server URL --token-file F: F copied into the data folder (mode 0600), and the config's keys.

    A copy, not a reference: the file given is often a download or a USB stick's; the copy stays where
    the plug-in looks, readable by this user only whatever the original's mode. A new token means
    running this again with the new file (or copying it over the copy)."""
    copy = plan.server_token_copy
    existed = copy.exists()
    make_dirs_recorded(copy.parent, changes.created_dirs)
    token = plan.server_token_file.read_text(encoding="ascii").strip()
    fd = os.open(str(copy), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(token + "\n")
    os.chmod(str(copy), 0o600)
    if not existed:
        changes.created_files.append(copy)
    return {"engine_service": plan.server, "engine_service_token_file": str(copy)}


def _install_plugin(plan: InstallPlan, previous: Optional[Manifest], changes: Changes,
                    report: InstallReport) -> None:
    config = engine_config(plan.engine.python, plan.logs_dir, plan.project_version, report.doctor)
    if plan.server:
        config.update(_copy_server_token(plan, changes))
    previous_files = previous.files_by_plugin_folder() if previous else {}
    say("Installing the plug-in into %d GIMP plug-ins folder%s ..."
        % (len(plan.targets), "" if len(plan.targets) == 1 else "s"))
    try:
        folders = install_plugin_folders(plan.targets, plugin_sources(plan.plugin_source), config,
                                         previous_files, plan.data_dir / "backups", changes.created_dirs)
    except PermissionError as error:
        raise InstallError(ExitCode.NO_PERMISSION, "cannot write the plug-in: %s" % error,
                           "Nothing was changed in GIMP's folders. Fix that folder's permissions and run "
                           "this again.")
    except OSError as error:
        raise InstallError(ExitCode.FAILED, "installing the plug-in failed: %s" % error,
                           "Nothing was changed in GIMP's folders.")
    report.folders = folders
    changes.plugin_folders = [PluginFolderRecord(str(f.target_folder), f.gimp_version, f.files)
                              for f in folders]
