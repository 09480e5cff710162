"""What an install will do: built from the options and the facts about this machine (pure), described
for ``--dry-run``, and checked against the disk before anything changes (``preflight``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Mapping, Optional

from .engine import check_base_python
from .errors import ExitCode, InstallError
from .platforms import GimpProfile, candidate_profiles, guess_gimp_version, shebang_for, user_data_dir, venv_python
from .plugin_files import MAIN_FILE, PLUGIN_NAME
from .torch_choice import TorchSource, choose_torch_source

MANIFEST_NAME = "install-manifest.json"
SERVICE_TOKEN_COPY = "service-token"  # the installer's copy of --token-file, in its data folder
DEMO_CONTENT = Path("examples") / "chelsea.png"
DEMO_STYLE = Path("examples") / "starry_night.jpg"
DEMO_SIZE = 256
DEMO_ITERATIONS = 100


@dataclass(frozen=True)
class HostFacts:
    """What the plan needs to know about this machine, gathered once by the command line."""

    platform: str
    home: Path
    env: Mapping[str, str]
    cwd: Path
    repo_root: Path
    project_version: str
    plugin_source: Path
    installer_python: Path
    gimp_profiles: List[GimpProfile]
    nvidia_gpu: bool = False


@dataclass(frozen=True)
class InstallOptions:
    """The install options of the command line, already made absolute."""

    venv: Optional[Path] = None
    engine_python: Optional[Path] = None
    base_python: Optional[Path] = None
    torch: str = "auto"
    torch_index_url: Optional[str] = None
    weights_file: Optional[Path] = None
    no_weights: bool = False
    weights_backbone: Optional[str] = None
    weights_format: Optional[str] = None
    gimp_plugin_dirs: List[Path] = field(default_factory=list)
    no_gimp: bool = False  # the engine only: no plug-in anywhere
    gimp_version: Optional[str] = None
    data_dir: Optional[Path] = None
    demo: bool = False
    demo_output: Optional[Path] = None
    server: Optional[str] = None  # --server: the plug-in's engine_service
    server_token_file: Optional[Path] = None  # --token-file: copied to SERVICE_TOKEN_COPY


@dataclass(frozen=True)
class EnginePlan:
    python: Path  # the interpreter the plug-in will start the engine with
    venv_dir: Optional[Path]  # None: an existing interpreter (--engine-python), no venv
    base_python: Optional[Path]  # the interpreter that creates the venv
    torch: Optional[TorchSource]
    project_dir: Path  # what pip installs


@dataclass(frozen=True)
class WeightsPlan:
    mode: str  # "fetch", "import" or "skip"
    file: Optional[Path] = None
    backbone: Optional[str] = None
    weights_format: Optional[str] = None

    def engine_args(self) -> List[str]:
        """The arguments after ``-m nst_core`` that prepare the weights."""
        if self.mode == "import":
            args = ["weights", "import", str(self.file)]
        elif self.mode == "fetch":
            args = ["weights", "fetch"]
        else:
            return []
        if self.backbone:
            args += ["--backbone", self.backbone]
        if self.weights_format and self.mode == "import":
            args += ["--weights-format", self.weights_format]
        return args


@dataclass(frozen=True)
class PluginTarget:
    plugins_dir: Path  # GIMP's plug-ins folder
    gimp_version: str
    label: str  # for messages: "GIMP 3.0 (Flatpak)", "given folder"
    version_guessed: bool = False  # True: the version is a default, not read from the path or options

    @property
    def folder(self) -> Path:
        return self.plugins_dir / PLUGIN_NAME

    @property
    def shebang(self) -> str:
        return shebang_for(self.gimp_version)


@dataclass(frozen=True)
class DemoPlan:
    content: Path
    style: Path
    output: Path
    size: int = DEMO_SIZE
    iterations: int = DEMO_ITERATIONS


@dataclass(frozen=True)
class InstallPlan:
    project_version: str
    platform: str
    data_dir: Path
    logs_dir: Path
    manifest_path: Path
    engine: EnginePlan
    weights: WeightsPlan
    targets: List[PluginTarget]
    plugin_source: Path
    demo: Optional[DemoPlan]
    # Where GIMP was looked for when none was found (the engine is installed without the plug-in);
    # empty when GIMP was found, or not looked for (--no-gimp, --gimp-plugin-dir).
    gimp_searched: List[str] = field(default_factory=list)
    server: Optional[str] = None
    server_token_file: Optional[Path] = None

    @property
    def server_token_copy(self) -> Path:
        """Where the installer keeps its copy of --token-file, named in nst_config.json."""
        return self.data_dir / SERVICE_TOKEN_COPY


def _plugin_targets(options: InstallOptions, facts: HostFacts) -> List[PluginTarget]:
    if options.no_gimp:
        return []
    if options.gimp_plugin_dirs:
        targets = []
        for folder in options.gimp_plugin_dirs:
            version = options.gimp_version or guess_gimp_version(folder)
            targets.append(PluginTarget(folder, version or "3", "GIMP %s, given folder" % (version or "3.x"),
                                        version_guessed=version is None))
        return targets
    return [PluginTarget(p.plugins_dir, p.version, p.label) for p in facts.gimp_profiles]


def _gimp_searched(options: InstallOptions, facts: HostFacts) -> List[str]:
    if options.no_gimp or options.gimp_plugin_dirs or facts.gimp_profiles:
        return []
    return sorted({str(p.profile_dir.parent) for p in candidate_profiles(facts.platform, facts.home, facts.env)})


def no_gimp_lines(plan: "InstallPlan", add_plugin_command: str, dry_run: bool = False) -> List[str]:
    """What to say when no GIMP was found: where the installer looked, and how to add the plug-in later."""
    return (["No GIMP found: none of GIMP's user profile folders (GIMP/2.10, GIMP/3.0, GIMP/3.2) exists. "
             "Looked in:"] + ["    %s" % folder for folder in plan.gimp_searched]
            + ["So the engine %s installed without the plug-in (exit code 3). After installing GIMP and "
               % ("would be" if dry_run else "is") +
"starting it once, add the plug-in with:",
               "    " + add_plugin_command,
               "(for a GIMP kept elsewhere, add --gimp-plugin-dir DIR; for the engine only, say --no-gimp)"])


def _weights_plan(options: InstallOptions) -> WeightsPlan:
    if options.no_weights:
        return WeightsPlan("skip")
    if options.weights_file:
        return WeightsPlan("import", options.weights_file, options.weights_backbone, options.weights_format)
    return WeightsPlan("fetch", backbone=options.weights_backbone)


def build_install_plan(options: InstallOptions, facts: HostFacts) -> InstallPlan:
    """Decide everything an install does, without touching the disk."""
    data_dir = options.data_dir or user_data_dir(facts.platform, facts.home, facts.env)
    if options.engine_python:
        engine = EnginePlan(options.engine_python, None, None, None, facts.repo_root)
    else:
        venv_dir = options.venv or data_dir / "venv"
        torch = choose_torch_source(options.torch, facts.platform, facts.nvidia_gpu, options.torch_index_url)
        engine = EnginePlan(venv_python(venv_dir, facts.platform), venv_dir,
                            options.base_python or facts.installer_python, torch, facts.repo_root)
    demo = None
    if options.demo:
        demo = DemoPlan(facts.repo_root / DEMO_CONTENT, facts.repo_root / DEMO_STYLE,
                        options.demo_output or facts.cwd / "nst-demo.png")
    return InstallPlan(
        project_version=facts.project_version,
        platform=facts.platform,
        data_dir=data_dir,
        logs_dir=data_dir / "logs",
        manifest_path=data_dir / MANIFEST_NAME,
        engine=engine,
        weights=_weights_plan(options),
        targets=_plugin_targets(options, facts),
        plugin_source=facts.plugin_source,
        demo=demo,
        gimp_searched=_gimp_searched(options, facts),
        server=options.server,
        server_token_file=options.server_token_file,
    )


def describe_plan(plan: InstallPlan) -> List[str]:
    """The plan as lines for a person (``--dry-run`` prints them; an install prints them first)."""
    engine = plan.engine
    lines = ["Neural Style Transfer for GIMP %s" % plan.project_version]
    if engine.venv_dir is None:
        lines.append("  engine:   use %s (check: -m nst_core doctor --json)" % engine.python)
    else:
        if engine.python.exists():
            lines.append("  engine:   update the virtual environment %s" % engine.venv_dir)
        else:
            lines.append("  engine:   create the virtual environment %s (with %s)" % (engine.venv_dir,
                                                                                  engine.base_python))
        lines.append("            install %s" % engine.torch.describe())
        lines.append("            (%s)" % engine.torch.why)
        lines.append("            install nst-core %s from %s, then check it starts"
                     % (plan.project_version, engine.project_dir))
    if plan.weights.mode == "skip":
        lines.append("  weights:  skipped (--no-weights)")
    else:
        lines.append("  weights:  nst-core " + " ".join(plan.weights.engine_args())
                     + (" (unless the engine has weights already)"
                        if plan.weights.mode == "fetch" and not plan.weights.backbone else ""))
    for target in plan.targets:
        action = "replace" if target.folder.exists() else "create"
        lines.append("  plug-in:  %s %s  [%s]" % (action, target.folder, target.label))
        note = " (GIMP version not in the path: pass --gimp-version 2.10 for GIMP 2.10)" \
            if target.version_guessed else ""
        lines.append("            %s with %s%s" % (MAIN_FILE, target.shebang, note))
    if plan.gimp_searched:
        lines.append("  plug-in:  none: no GIMP found (looked in %s)" % ", ".join(plan.gimp_searched))
    if plan.server:
        lines.append("  service:  the plug-in sends its jobs to %s (token: a copy of %s at %s)"
                     % (plan.server, plan.server_token_file, plan.server_token_copy))
    lines.append("  logs:     %s" % plan.logs_dir)
    lines.append("  record:   %s (what --uninstall removes)" % plan.manifest_path)
    if plan.demo:
        lines.append("  demo:     stylize %s with %s -> %s" % (plan.demo.content.name, plan.demo.style.name,
                                                              plan.demo.output))
    return lines


# --- checks against the disk, before anything changes -------------------------------------------------

def _nearest_existing(path: Path) -> Path:
    current = path
    while not current.exists() and current.parent != current:
        current = current.parent
    return current


def check_writable_folder(path: Path, what: str) -> None:
    """Raise unless ``path`` is a folder we can write to, or can be created (its nearest existing
    ancestor is a writable folder)."""
    if path.exists() and not path.is_dir():
        raise InstallError(ExitCode.NO_PERMISSION, "%s %s exists but is not a folder." % (what, path),
                           "Move that file away, or choose another folder.")
    existing = _nearest_existing(path)
    if not existing.is_dir() or not os.access(str(existing), os.W_OK | os.X_OK):
        raise InstallError(
            ExitCode.NO_PERMISSION,
            "no write permission for %s %s (%s is not writable)." % (what, path, existing),
            "Fix the folder's permissions (it should belong to you), or choose another folder; "
            "do not run the installer as root/administrator for a per-user GIMP.")


def _check_venv_folder(venv_dir: Path) -> None:
    if venv_dir.is_dir() and any(venv_dir.iterdir()) and not (venv_dir / "pyvenv.cfg").is_file():
        raise InstallError(ExitCode.USAGE,
                           "%s exists, is not empty and is not a virtual environment." % venv_dir,
                           "Choose a new or empty folder with --venv, or an existing venv.")
    check_writable_folder(venv_dir, "the engine's folder")


def _check_program(path: Path, what: str, option: str) -> None:
    if not path.is_file():
        raise InstallError(ExitCode.USAGE, "%s %s does not exist." % (what, path),
                           "Give the full path of a Python interpreter with %s." % option)


def preflight(plan: InstallPlan) -> None:
    """Every check that can fail before a change is made, so a doomed install changes nothing."""
    sources = plan.plugin_source / MAIN_FILE
    if not sources.is_file():
        raise InstallError(ExitCode.FAILED, "the plug-in's source %s is missing." % sources,
                           "Run the installer from a complete copy of the project.")
    engine = plan.engine
    if engine.venv_dir is None:
        _check_program(engine.python, "the engine interpreter", "--engine-python")
    else:
        _check_program(engine.base_python, "the Python to create the venv with", "--python")
        if not (engine.project_dir / "pyproject.toml").is_file():
            raise InstallError(ExitCode.FAILED, "%s holds no pyproject.toml: pip cannot install the engine "
                               "from it." % engine.project_dir, "Run the installer from the project's copy.")
        _check_venv_folder(engine.venv_dir)
        if not engine.python.exists():
            check_base_python(engine.base_python)  # the engine needs 3.9+, the installer runs on 3.8
    if plan.weights.mode == "import" and not plan.weights.file.is_file():
        raise InstallError(ExitCode.USAGE, "the weights file %s does not exist." % plan.weights.file,
                           "Give the path of a downloaded .pth file with --weights FILE.")
    check_writable_folder(plan.data_dir, "the installer's data folder")
    for target in plan.targets:
        check_writable_folder(target.plugins_dir, "GIMP's plug-ins folder")
        if target.folder.exists() and not target.folder.is_dir():
            raise InstallError(ExitCode.NO_PERMISSION, "%s exists but is not a folder." % target.folder,
                               "Move that file away and run this again.")
    if plan.demo:
        for image in (plan.demo.content, plan.demo.style):
            if not image.is_file():
                raise InstallError(ExitCode.USAGE, "the demo image %s is missing." % image,
                                   "Run the installer from a complete copy of the project, or drop --demo.")
        check_writable_folder(plan.demo.output.parent, "the demo's output folder")
