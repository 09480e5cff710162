"""``--uninstall``: remove exactly what the manifest lists, and nothing else.

Files someone else put into a folder the installer made keep that folder alive; a venv is removed only
if the installer created it and it still looks like a venv; whatever cannot be removed stays listed in
the manifest, so a second try can finish the job.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import List

from .errors import ExitCode, InstallError
from .manifest import Manifest, PluginFolderRecord, save_manifest
from .plugin_files import remove_installed_files


@dataclass
class UninstallReport:
    removed: List[str] = field(default_factory=list)
    kept: List[str] = field(default_factory=list)  # with the reason, for a person
    failed: List[str] = field(default_factory=list)
    permission_denied: bool = False


def describe_uninstall(manifest: Manifest, dry_run: bool) -> List[str]:
    lines = ["Would remove:" if dry_run else "Removing:"]
    for record in manifest.plugin_folders:
        lines.append("  plug-in   %s (%s)" % (record.path, ", ".join(record.files)))
    for venv in manifest.created_venvs:
        lines.append("  venv      %s" % venv)
    for path in manifest.created_files:
        lines.append("  file      %s" % path)
    for path in sorted(manifest.created_dirs, key=len, reverse=True):
        lines.append("  folder    %s (if empty)" % path)
    return lines


def execute_uninstall(manifest_path: Path, manifest: Manifest) -> UninstallReport:
    report = UninstallReport()
    remaining = Manifest(project_version=manifest.project_version, engine_python=manifest.engine_python,
                         torch_variant=manifest.torch_variant)

    def failed(path: str, error: OSError) -> None:
        report.failed.append("%s: %s" % (path, error))
        report.permission_denied = report.permission_denied or isinstance(error, PermissionError)

    for record in manifest.plugin_folders:
        try:
            left = remove_installed_files(Path(record.path), record.files)
            report.removed.append(record.path)
            if left:
                report.kept.append("%s: holds files the installer did not write (%s)"
                                   % (record.path, ", ".join(left[:5])))
        except OSError as error:
            failed(record.path, error)
            remaining.plugin_folders.append(PluginFolderRecord(record.path, record.gimp_version, record.files))

    for path in manifest.created_files:
        try:
            if Path(path).is_file():
                Path(path).unlink()
                report.removed.append(path)
        except OSError as error:
            failed(path, error)
            remaining.created_files.append(path)

    for venv in manifest.created_venvs:
        folder = Path(venv)
        if not folder.exists():
            continue
        if not (folder / "pyvenv.cfg").is_file():
            report.kept.append("%s: no longer a virtual environment, so left alone" % venv)
            continue
        try:
            shutil.rmtree(venv)
            report.removed.append(venv)
        except OSError as error:
            failed(venv, error)
            remaining.created_venvs.append(venv)

    nothing_failed = not report.failed
    if nothing_failed and manifest_path.is_file():
        manifest_path.unlink()
    not_empty: List[Path] = []
    for folder in sorted(manifest.created_dirs, key=lambda p: len(Path(p).parts), reverse=True):
        path = Path(folder)
        if not path.is_dir():
            continue
        try:
            path.rmdir()
            report.removed.append(folder)
        except OSError:
            not_empty.append(path)
            if not nothing_failed:
                remaining.created_dirs.append(folder)
    if nothing_failed:
        # Name only the innermost ones: their parents are kept just because they hold them.
        for path in not_empty:
            if not any(other != path and path in other.parents for other in not_empty):
                report.kept.append("%s: holds files the installer did not create" % path)
    else:
        save_manifest(manifest_path, remaining)
    return report


def raise_for_failures(report: UninstallReport, manifest_path: Path) -> None:
    if not report.failed:
        return
    raise InstallError(ExitCode.NO_PERMISSION if report.permission_denied else ExitCode.FAILED,
                       "some of what was installed could not be removed:\n  " + "\n  ".join(report.failed),
                       "Fix the cause and run --uninstall again; %s lists what is left." % manifest_path)
