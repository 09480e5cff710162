"""The plug-in folder ``plug-ins/nst_style_transfer/``: its contents (the plug-in's files and its package
folders, such as the engine client ``nst_client/``), and putting it in place so that GIMP sees it
complete or not at all.

Each folder is built in a hidden sibling (``.nst_style_transfer.staging-*``) and renamed into place. With
several GIMP profiles the swap is a transaction: if one fails, the folders already swapped get their
previous contents back. A folder being replaced is deleted only when every file in it is one the
installer wrote (or Python's bytecode of one); anything else is moved to a backup folder instead.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Set

PLUGIN_NAME = "nst_style_transfer"
MAIN_FILE = PLUGIN_NAME + ".py"
CONFIG_FILE = "nst_config.json"
STAGING_PREFIX = "." + PLUGIN_NAME + ".staging-"
RETIRED_PREFIX = "." + PLUGIN_NAME + ".old-"

# GIMP needs the main file executable; helpers are imported, not run, so they are not.
EXECUTABLE_MODE = 0o755
FILE_MODE = 0o644
FOLDER_MODE = 0o755


class PluginSource(NamedTuple):
    """A file of the plug-in: where it is, and its name inside the plug-in folder (``/``-separated,
    ``nst_client/protocol.py`` for a module of a package folder)."""

    path: Path
    name: str


def plugin_sources(source_dir: Path) -> List[PluginSource]:
    """Every ``*.py`` of the plug-in's source folder (the main file and its helper modules), its help
    page (``*.html``, opened by the dialog's Help button), and every ``*.py`` of its package folders
    (a folder with an ``__init__.py``, and the packages inside those)."""
    sources = [PluginSource(p, p.name) for p in source_dir.iterdir()
               if p.is_file() and p.suffix in (".py", ".html")]
    packages = [p for p in source_dir.iterdir() if (p / "__init__.py").is_file()]
    while packages:
        package = packages.pop()
        for entry in package.iterdir():
            if entry.is_file() and entry.suffix == ".py":
                sources.append(PluginSource(entry, entry.relative_to(source_dir).as_posix()))
            elif (entry / "__init__.py").is_file():
                packages.append(entry)
    return sorted(sources, key=lambda source: source.name)


def with_shebang(source: bytes, shebang: str) -> bytes:
    """The source with ``shebang`` as its first line, replacing the shebang it had, if any. The line
    ending of the file is kept, and a coding line stays within the first two lines."""
    newline = b"\r\n" if b"\r\n" in source.split(b"\n", 1)[0] + b"\n" else b"\n"
    if source.startswith(b"#!"):
        _, _, rest = source.partition(b"\n")
    else:
        rest = source
    return shebang.encode("ascii") + newline + rest


def engine_config(engine_python: Path, log_dir: Path, version: str,
                  doctor: Optional[Dict[str, object]] = None) -> Dict[str, object]:
    """``nst_config.json``: how the plug-in finds the engine, and the devices the engine's doctor
    found (the dialog offers only those; absent when doctor did not say)."""
    config: Dict[str, object] = {"engine_python": os.path.abspath(str(engine_python)),
                                 "log_dir": os.path.abspath(str(log_dir)),
                                 "version": version}
    if doctor and ("cuda" in doctor or "mps" in doctor):
        config["devices"] = ["cpu"] + [name for name in ("cuda", "mps") if doctor.get(name) is True]
    return config


def _write_file(path: Path, data: bytes, mode: int) -> None:
    with open(str(path), "wb") as handle:
        handle.write(data)
    os.chmod(str(path), mode)


def build_plugin_folder(folder: Path, sources: Sequence[PluginSource], shebang: str,
                        config: Dict[str, object]) -> List[str]:
    """Fill the (empty, existing) ``folder``; return the names written, for the manifest."""
    written = []
    for source in sources:
        data = source.path.read_bytes()
        target = folder / source.name
        parts = source.name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):  # a package's folder, made at its first file
            package = folder.joinpath(*parts[:depth])
            if not package.is_dir():
                package.mkdir()
                os.chmod(str(package), FOLDER_MODE)
        if source.name == MAIN_FILE:
            _write_file(target, with_shebang(data, shebang), EXECUTABLE_MODE)
        else:
            _write_file(target, data, FILE_MODE)
        written.append(source.name)
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    _write_file(folder / CONFIG_FILE, text.encode("utf-8"), FILE_MODE)
    written.append(CONFIG_FILE)
    os.chmod(str(folder), FOLDER_MODE)
    return sorted(written)


def _module_names(installed_files: Iterable[str]) -> Set[str]:
    """The modules among the installed files, by their names without ``.py``: ``nst_client/protocol``."""
    return {name[:-3] for name in installed_files if name.endswith(".py")}


def _is_bytecode_of(relative: str, modules: Set[str]) -> bool:
    """``__pycache__/helper.cpython-312.pyc`` (Python 3) or ``helper.pyc`` (GIMP 2.10's Python 2), in
    the plug-in folder or in a package folder of it."""
    folder, _, name = relative.replace("\\", "/").rpartition("/")
    if folder == "__pycache__" or folder.endswith("/__pycache__"):
        folder = folder[:-len("__pycache__")].rstrip("/")
        return name.endswith(".pyc") and "/".join(filter(None, [folder, name.split(".", 1)[0]])) in modules
    stem, _, extension = name.rpartition(".")
    return extension in ("pyc", "pyo") and "/".join(filter(None, [folder, stem])) in modules


def _installed_folders(installed_files: Iterable[str]) -> Set[str]:
    """The package folders the installer made for its files (``nst_client``), and their caches."""
    folders = set()
    for name in installed_files:
        parts = name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            folders.add("/".join(parts[:depth]))
    return folders | {"/".join(filter(None, [folder, "__pycache__"])) for folder in folders | {""}}


def foreign_entries(folder: Path, installed_files: Iterable[str]) -> List[str]:
    """Files in ``folder`` the installer did not write (bytecode of its modules counts as its own)."""
    known = set(installed_files)
    modules = _module_names(known)
    ours = _installed_folders(known)
    foreign = []
    for root, dirs, files in os.walk(str(folder)):
        for name in files:
            relative = os.path.relpath(os.path.join(root, name), str(folder)).replace(os.sep, "/")
            if relative not in known and not _is_bytecode_of(relative, modules):
                foreign.append(relative)
        for name in dirs:
            relative = os.path.relpath(os.path.join(root, name), str(folder)).replace(os.sep, "/")
            if relative not in ours and not os.listdir(os.path.join(root, name)):
                foreign.append(relative + "/")  # an empty folder someone made
    return sorted(foreign)


def remove_installed_files(folder: Path, installed_files: Iterable[str]) -> List[str]:
    """Delete what the installer wrote (and its bytecode, and its package folders that this empties),
    then the folder if that left it empty. Return what is left (files someone else put there), which
    is kept."""
    names = list(installed_files)
    modules = _module_names(names)
    for name in names:
        path = folder / name
        if path.is_file() or path.is_symlink():
            path.unlink()
    for root, _dirs, files in os.walk(str(folder)):
        for name in files:
            relative = os.path.relpath(os.path.join(root, name), str(folder)).replace(os.sep, "/")
            if _is_bytecode_of(relative, modules):
                os.remove(os.path.join(root, name))
    # deepest first, so that a package's emptied cache goes before the package itself
    for relative in sorted(_installed_folders(names), key=lambda name: name.count("/"), reverse=True):
        path = folder / relative
        if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
            path.rmdir()
    if not folder.is_dir():
        return []
    left = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
    if not left:
        folder.rmdir()
    return left


def make_dirs_recorded(path: Path, created: List[Path]) -> None:
    """``mkdir -p`` that appends each folder it creates to ``created`` (outermost first)."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        folder.mkdir()
        created.append(folder)


def remove_empty_dirs(folders: Iterable[Path]) -> None:
    """Remove each folder that is empty, deepest first; leave the others."""
    for folder in sorted(set(folders), key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()
        except OSError:
            pass


def remove_leftover_staging(plugins_dir: Path) -> None:
    """An interrupted run (power cut, kill -9) can leave our hidden staging folders behind."""
    if not plugins_dir.is_dir():
        return
    for entry in plugins_dir.iterdir():
        if entry.is_dir() and entry.name.startswith(STAGING_PREFIX):
            shutil.rmtree(str(entry), ignore_errors=True)


@dataclass
class FolderInstall:
    """One plug-in folder put in place, for the summary and the manifest."""

    target_folder: Path
    gimp_version: str
    label: str
    files: List[str]
    replaced: bool = False
    backup: Optional[Path] = None  # where a replaced folder with someone else's files went


@dataclass
class _Swap:
    target: object  # plan.PluginTarget
    staging: Path
    files: List[str]
    retired: Optional[Path] = None  # the previous folder, renamed aside until the transaction ends
    swapped: bool = False


def install_plugin_folders(targets: Sequence, sources: Sequence[PluginSource], config: Dict[str, object],
                           previous_files: Dict[str, List[str]], backup_root: Path,
                           created_dirs: List[Path]) -> List[FolderInstall]:
    """Put a complete plug-in folder into each target's plug-ins folder, all or none.

    ``previous_files`` maps a plug-in folder's path to the files an earlier install wrote there (from
    the manifest). Folders this creates (a missing ``plug-ins``) are appended to ``created_dirs``, and
    removed again if the transaction fails."""
    swaps: List[_Swap] = []
    created_here: List[Path] = []
    try:
        for target in targets:
            make_dirs_recorded(target.plugins_dir, created_here)
            remove_leftover_staging(target.plugins_dir)
            staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=str(target.plugins_dir)))
            swaps.append(_Swap(target, staging, []))
            swaps[-1].files = build_plugin_folder(staging, sources, target.shebang, config)
        for swap in swaps:
            folder = swap.target.folder
            if os.path.lexists(str(folder)):
                swap.retired = Path(tempfile.mkdtemp(prefix=RETIRED_PREFIX, dir=str(swap.target.plugins_dir)))
                swap.retired.rmdir()  # mkdtemp found a free name; rename needs it absent
                os.rename(str(folder), str(swap.retired))
            os.rename(str(swap.staging), str(folder))
            swap.swapped = True
    except BaseException:
        _roll_back(swaps)
        remove_empty_dirs(created_here)
        raise
    created_dirs.extend(created_here)
    return [_finish(swap, previous_files, backup_root) for swap in swaps]


def _roll_back(swaps: Sequence[_Swap]) -> None:
    for swap in reversed(swaps):
        folder = swap.target.folder
        if swap.swapped:
            shutil.rmtree(str(folder), ignore_errors=True)
        if swap.retired is not None and swap.retired.exists():
            os.rename(str(swap.retired), str(folder))
        if swap.staging.exists():
            shutil.rmtree(str(swap.staging), ignore_errors=True)


def _finish(swap: _Swap, previous_files: Dict[str, List[str]], backup_root: Path) -> FolderInstall:
    """Dispose of the folder that was replaced: delete it if it held only our files, else back it up."""
    target = swap.target
    result = FolderInstall(target.folder, target.gimp_version, target.label, swap.files,
                           replaced=swap.retired is not None)
    if swap.retired is None:
        return result
    ours = previous_files.get(str(target.folder), [])
    if not foreign_entries(swap.retired, ours):
        shutil.rmtree(str(swap.retired), ignore_errors=True)
        return result
    stamp = time.strftime("%Y%m%d-%H%M%S")
    slug = "".join(c if c.isalnum() or c in ".-" else "-" for c in target.label).strip("-")
    backup = backup_root / ("%s-%s" % (stamp, slug)) / PLUGIN_NAME
    counter = 1
    while backup.exists():  # two backups within a second: never move one into the other
        counter += 1
        backup = backup_root / ("%s-%s-%d" % (stamp, slug, counter)) / PLUGIN_NAME
    try:
        backup.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(swap.retired), str(backup))
        result.backup = backup
    except OSError:
        result.backup = swap.retired  # the new folder is in place; the old one stays, hidden, beside it
    return result
