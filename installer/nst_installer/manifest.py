"""The install manifest: every file and folder the installer created, so ``--uninstall`` removes
exactly those (the venv only if the installer created it; nothing it merely used or replaced)."""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from .errors import ExitCode, InstallError

FORMAT = 1


@dataclass
class PluginFolderRecord:
    path: str  # the plug-in folder (.../plug-ins/nst_style_transfer)
    gimp_version: str
    files: List[str]  # names inside it that the installer wrote


@dataclass
class Manifest:
    project_version: str = ""
    engine_python: str = ""
    torch_variant: Optional[str] = None
    created_venvs: List[str] = field(default_factory=list)
    plugin_folders: List[PluginFolderRecord] = field(default_factory=list)
    created_dirs: List[str] = field(default_factory=list)  # removed on uninstall only when empty
    created_files: List[str] = field(default_factory=list)  # logs, the engine's weights copy
    updated: str = ""

    def files_by_plugin_folder(self) -> Dict[str, List[str]]:
        return {record.path: list(record.files) for record in self.plugin_folders}

    def is_empty(self) -> bool:
        return not (self.created_venvs or self.plugin_folders or self.created_dirs or self.created_files)


@dataclass
class Changes:
    """What one installer run created; merged into the manifest at the end of the run, also after a
    failure, for whatever that failure left in place on purpose (a log, a venv worth keeping)."""

    created_dirs: List[Path] = field(default_factory=list)
    created_files: List[Path] = field(default_factory=list)
    created_venv: Optional[Path] = None
    plugin_folders: List[PluginFolderRecord] = field(default_factory=list)
    engine_python: Optional[Path] = None
    torch_variant: Optional[str] = None

    def is_empty(self) -> bool:
        return not (self.created_dirs or self.created_files or self.created_venv or self.plugin_folders)


def _union(old: List[str], new: List[str]) -> List[str]:
    result = list(old)
    result.extend(item for item in new if item not in result)
    return result


def merge(old: Optional[Manifest], changes: Changes, project_version: str) -> Manifest:
    """The manifest after a run: the earlier records plus this run's (a re-installed plug-in folder's
    record replaces the earlier one)."""
    base = old or Manifest()
    folders = {record.path: record for record in base.plugin_folders}
    for record in changes.plugin_folders:
        folders[record.path] = record
    return Manifest(
        project_version=project_version,
        engine_python=str(changes.engine_python) if changes.engine_python else base.engine_python,
        torch_variant=changes.torch_variant or base.torch_variant,
        created_venvs=_union(base.created_venvs, [str(changes.created_venv)] if changes.created_venv else []),
        plugin_folders=list(folders.values()),
        created_dirs=_union(base.created_dirs, [str(p) for p in changes.created_dirs]),
        created_files=_union(base.created_files, [str(p) for p in changes.created_files]),
        updated=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )


def load_manifest(path: Path) -> Optional[Manifest]:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        folders = [PluginFolderRecord(str(r["path"]), str(r["gimp_version"]), [str(f) for f in r["files"]])
                   for r in data.get("plugin_folders", [])]
        return Manifest(
            project_version=str(data.get("project_version", "")),
            engine_python=str(data.get("engine_python", "")),
            torch_variant=data.get("torch_variant"),
            created_venvs=[str(p) for p in data.get("created_venvs", [])],
            plugin_folders=folders,
            created_dirs=[str(p) for p in data.get("created_dirs", [])],
            created_files=[str(p) for p in data.get("created_files", [])],
            updated=str(data.get("updated", "")),
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InstallError(ExitCode.FAILED, "the install record %s cannot be read (%s)." % (path, error),
                           "Move it away to start afresh; then nothing earlier installs left is "
                           "removed automatically.")


def save_manifest(path: Path, manifest: Manifest) -> None:
    """Write atomically: a crash leaves the old record or the new one, never half of one."""
    data = asdict(manifest)
    data = dict(format=FORMAT, **data)
    fd, temporary = tempfile.mkstemp(prefix=".install-manifest-", suffix=".json", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
        os.chmod(temporary, 0o644)  # mkstemp makes it private; it holds nothing secret
        os.replace(temporary, str(path))
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
