"""Where things live on each platform: the installer's data folder, a venv's interpreter, GIMP's user
profiles and their plug-in folders.

Everything here is a function of (platform, home, env) and nothing else, except ``find_gimp_profiles``
which looks at the disk, so tests can imitate a Linux, macOS or Windows machine in a temporary folder.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Mapping, Optional, Tuple

LINUX = "linux"
MACOS = "macos"
WINDOWS = "windows"
PLATFORMS = (LINUX, MACOS, WINDOWS)

APP_FOLDER = "nst-gimp"  # the installer's own folder in the user's data folder

# GIMP versions whose user profile we look for. GIMP 3 keeps one profile per minor release
# ("3.0", "3.2"); later 3.x folders found on disk are taken too (see find_gimp_profiles).
KNOWN_GIMP_VERSIONS = ("2.10", "3.0", "3.2")
_PROFILE_FOLDER_NAME = re.compile(r"^(2\.10|3\.\d+)$")

NATIVE = "native"
FLATPAK = "Flatpak"
SNAP = "Snap"


def current_platform(sys_platform: Optional[str] = None) -> str:
    name = sys_platform or sys.platform
    if name.startswith("win") or name == "cygwin":
        return WINDOWS
    if name == "darwin":
        return MACOS
    return LINUX


def _absolute_env_path(env: Mapping[str, str], name: str) -> Optional[Path]:
    """An environment variable holding a folder; XDG says relative values are to be ignored."""
    value = env.get(name, "")
    return Path(value) if value and os.path.isabs(value) else None


def _env_path(env: Mapping[str, str], name: str) -> Optional[Path]:
    value = env.get(name, "")
    return Path(value) if value else None


def user_data_dir(platform: str, home: Path, env: Mapping[str, str]) -> Path:
    """The installer's data folder: the default venv, logs and the install manifest live here."""
    if platform == WINDOWS:
        base = _env_path(env, "LOCALAPPDATA") or home / "AppData" / "Local"
    elif platform == MACOS:
        base = home / "Library" / "Application Support"
    else:
        base = _absolute_env_path(env, "XDG_DATA_HOME") or home / ".local" / "share"
    return base / APP_FOLDER


def venv_python(venv_dir: Path, platform: str) -> Path:
    if platform == WINDOWS:
        return venv_dir / "Scripts" / "python.exe"
    return venv_dir / "bin" / "python"


@dataclass(frozen=True)
class GimpProfile:
    """One GIMP user profile folder (``.../GIMP/<version>``) and how that GIMP was installed."""

    version: str  # "2.10", "3.0", "3.2"; "3" for a GIMP3_DIRECTORY profile shared by all 3.x
    flavour: str  # NATIVE, FLATPAK, SNAP, or the name of the overriding environment variable
    profile_dir: Path

    @property
    def plugins_dir(self) -> Path:
        return self.profile_dir / "plug-ins"

    @property
    def label(self) -> str:
        version = "3.x" if self.version == "3" else self.version
        return "GIMP %s" % version if self.flavour == NATIVE else "GIMP %s (%s)" % (version, self.flavour)


def gimp_config_roots(platform: str, home: Path, env: Mapping[str, str]) -> List[Tuple[str, Path]]:
    """The ``GIMP`` folders that hold one profile per version, by flavour of GIMP installation."""
    if platform == WINDOWS:
        appdata = _env_path(env, "APPDATA") or home / "AppData" / "Roaming"
        return [(NATIVE, appdata / "GIMP")]
    if platform == MACOS:
        return [(NATIVE, home / "Library" / "Application Support" / "GIMP")]
    config_home = _absolute_env_path(env, "XDG_CONFIG_HOME") or home / ".config"
    # Flatpak and Snap GIMPs have their own config home inside the sandbox; the host's
    # XDG_CONFIG_HOME does not reach them.
    return [
        (NATIVE, config_home / "GIMP"),
        (FLATPAK, home / ".var" / "app" / "org.gimp.GIMP" / "config" / "GIMP"),
        (SNAP, home / "snap" / "gimp" / "current" / ".config" / "GIMP"),
    ]


def _directory_overrides(home: Path, env: Mapping[str, str]) -> List[GimpProfile]:
    """GIMP2_DIRECTORY / GIMP3_DIRECTORY replace a native GIMP's profile folder (a relative value is
    taken from the home folder, as GIMP does)."""
    profiles = []
    for variable, version in (("GIMP2_DIRECTORY", "2.10"), ("GIMP3_DIRECTORY", "3")):
        value = env.get(variable, "")
        if value:
            folder = Path(value) if os.path.isabs(value) else home / value
            profiles.append(GimpProfile(version, variable, folder))
    return profiles


def _major(version: str) -> str:
    return version.split(".", 1)[0]


def candidate_profiles(platform: str, home: Path, env: Mapping[str, str],
                       extra_versions: Iterable[str] = ()) -> List[GimpProfile]:
    """Every profile folder a GIMP of a supported version could use on this machine (pure)."""
    versions = list(KNOWN_GIMP_VERSIONS)
    versions += sorted(set(extra_versions) - set(versions), key=lambda v: [int(p) for p in v.split(".")])
    overrides = _directory_overrides(home, env)
    overridden_majors = {_major(profile.version) for profile in overrides}
    profiles = []
    for flavour, root in gimp_config_roots(platform, home, env):
        for version in versions:
            if flavour == NATIVE and _major(version) in overridden_majors:
                continue
            profiles.append(GimpProfile(version, flavour, root / version))
    return profiles + overrides


def _version_folders_on_disk(roots: Iterable[Path]) -> List[str]:
    found = set()
    for root in roots:
        try:
            names = os.listdir(str(root))
        except OSError:
            continue
        found.update(name for name in names if _PROFILE_FOLDER_NAME.match(name))
    return sorted(found)


def find_gimp_profiles(platform: str, home: Path, env: Mapping[str, str]) -> List[GimpProfile]:
    """The profiles that exist: a GIMP profile counts as found when its ``GIMP/<version>`` folder does
    (GIMP creates it on first start; its ``plug-ins`` folder may still be missing)."""
    roots = [root for _, root in gimp_config_roots(platform, home, env)]
    candidates = candidate_profiles(platform, home, env, _version_folders_on_disk(roots))
    found, seen = [], set()
    for profile in candidates:
        key = os.path.normcase(os.path.abspath(str(profile.profile_dir)))
        if key not in seen and profile.profile_dir.is_dir():
            seen.add(key)
            found.append(profile)
    return found


def guess_gimp_version(plugins_dir: Path) -> Optional[str]:
    """The GIMP version a plug-ins folder belongs to, from a ``.../<version>/...`` part of its path."""
    for part in reversed(Path(plugins_dir).parts):
        if _PROFILE_FOLDER_NAME.match(part):
            return part
    return None


def normalize_gimp_version(text: str) -> str:
    """``--gimp-version``: "2", "2.10" -> "2.10"; "3" -> "3"; "3.0", "3.2", ... as given."""
    value = text.strip()
    if value in ("2", "2.10"):
        return "2.10"
    if value == "3" or re.match(r"^3\.\d+$", value):
        return value
    raise ValueError("GIMP version %r is not supported: use 2.10 or 3.x (e.g. 3.0, 3.2)" % text)


def shebang_for(gimp_version: str) -> str:
    """GIMP 2.10 runs Python-Fu plug-ins with Python 2.7; GIMP 3 with Python 3."""
    return "#!/usr/bin/env python2" if gimp_version.startswith("2.") else "#!/usr/bin/env python3"
