"""The command line: ``python3 installer/install.py [options]``."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import List, Optional, Sequence

from .checks import dry_run_checks
from .demo import engine_log_path, run_demo
from .errors import EXIT_CODES_HELP, ExitCode, InstallError
from .manifest import Changes, load_manifest, merge, save_manifest
from .plan import (
    MANIFEST_NAME,
    HostFacts,
    InstallOptions,
    InstallPlan,
    build_install_plan,
    describe_plan,
    no_gimp_lines,
    preflight,
)
from .platforms import PLATFORMS, current_platform, find_gimp_profiles, normalize_gimp_version, user_data_dir
from .steps import execute_install
from .summary import install_summary
from .torch_choice import TORCH_CHOICES, has_nvidia_gpu
from .uninstall import describe_uninstall, execute_uninstall, raise_for_failures

REPO_ROOT = Path(__file__).resolve().parents[2]

DESCRIPTION = """\
Install the Neural Style Transfer filter for GIMP 2.10 and 3.x: the engine (nst-core, with PyTorch) in
its own virtual environment, its weights, and the plug-in in every GIMP user profile found.
Re-running upgrades in place. Nothing is asked: the options below say everything."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="install.py", description=DESCRIPTION, epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    engine = parser.add_argument_group("engine")
    engine.add_argument("--venv", metavar="DIR",
                        help="the engine's virtual environment (default: DATA_DIR/venv; reused when present)")
    engine.add_argument("--engine-python", metavar="PATH",
                        help="use this Python, which already has the engine, instead of creating a venv")
    engine.add_argument("--python", metavar="PATH", dest="base_python",
                        help="the Python 3.9+ that creates the venv (default: the one running this)")
    engine.add_argument("--torch", choices=TORCH_CHOICES, default="auto",
                        help="which torch build: auto = CUDA with an NVIDIA GPU, PyPI's wheel on macOS, "
                             "else CPU wheels; default = plain PyPI (default: %(default)s)")
    engine.add_argument("--torch-index-url", metavar="URL",
                        help="take torch from this package index (e.g. https://download.pytorch.org/whl/cu126)")
    weights = parser.add_argument_group("weights")
    choice = weights.add_mutually_exclusive_group()
    choice.add_argument("--weights", metavar="FILE",
                        help="import this local weights file (offline machines) instead of downloading them; "
                             "known files (torchvision's vgg16-397923af.pth, vgg19-dcbb9e9d.pth, the "
                             "Caffe-converted vgg16-imagenet-caffe-features.pth) are recognised by their hash")
    choice.add_argument("--no-weights", action="store_true",
                        help="skip the weights; the summary says how to add them later")
    weights.add_argument("--weights-backbone", choices=("vgg19", "vgg16"),
                         help="the network the weights are for "
                              "(default: detected from --weights FILE; vgg19 to download)")
    weights.add_argument("--weights-format", choices=("torchvision", "caffe"),
                         help="the preprocessing the imported weights expect: needed for a file the engine "
                              "does not recognise (default: what the file is known to be, or declares)")
    gimp = parser.add_argument_group("GIMP")
    gimp.add_argument("--gimp-plugin-dir", metavar="DIR", action="append", default=[],
                      help="install into this plug-ins folder instead of the GIMP profiles found (repeatable)")
    gimp.add_argument("--no-gimp", action="store_true",
                      help="install the engine only, no plug-in (headless machines, scripts, batch work)")
    gimp.add_argument("--gimp-version", metavar="VERSION",
                      help="the GIMP version of the --gimp-plugin-dir folders (2.10 or 3.x), when their "
                           "path does not say (it picks the plug-in's interpreter line)")
    service = parser.add_argument_group(
        "engine service", "By default the plug-in keeps a warm engine service on this computer (started by "
        "the first run, gone after 15 idle minutes). To send the work to a machine with a GPU instead, run "
        "`nst-core serve` there (docs/SERVICE.md) and name it here.")
    service.add_argument("--server", metavar="URL",
                         help="the plug-in sends its jobs to the nst-core serve at URL (https://... behind a "
                              "TLS proxy, or http://127.0.0.1:PORT); needs --token-file")
    service.add_argument("--token-file", metavar="FILE",
                         help="that service's token file (copied from it): the installer keeps a copy, "
                              "readable only by you, in its data folder")
    other = parser.add_argument_group("other")
    other.add_argument("--data-dir", metavar="DIR",
                       help="the installer's folder for the venv, logs and its install record (default: "
                            "~/.local/share/nst-gimp, ~/Library/Application Support/nst-gimp or "
                            "%%LOCALAPPDATA%%\\nst-gimp)")
    other.add_argument("--dry-run", action="store_true",
                       help="print the plan, check that the package index and the weights' source (or the "
                            "--weights FILE) can be had, say what it could not check; change nothing")
    other.add_argument("--uninstall", action="store_true",
                       help="remove exactly what earlier installs created (as their record lists)")
    other.add_argument("--demo", action="store_true",
                       help="after installing, stylize the sample images once and say where the result is")
    other.add_argument("--demo-output", metavar="FILE", help="the demo's result (default: ./nst-demo.png)")
    other.add_argument("-y", "--yes", action="store_true",
                       help="accepted for scripts; the installer never asks anything anyway")
    other.add_argument("-v", "--verbose", action="store_true", help="show pip's whole output")
    # For tests: imitate another platform's folders, and install a given plug-in source.
    parser.add_argument("--platform", choices=PLATFORMS, help=argparse.SUPPRESS)
    parser.add_argument("--plugin-source", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--weights-url", metavar="URL", help=argparse.SUPPRESS)  # what --dry-run looks at
    return parser


def _absolute(text: Optional[str]) -> Optional[Path]:
    return Path(os.path.abspath(os.path.expanduser(text))) if text else None


def resolve_program(text: Optional[str]) -> Optional[Path]:
    """A program given as a path or as a name on PATH, made absolute. Symlinks are kept as they are:
    a venv's python is a link, and resolving it would escape the venv."""
    if not text:
        return None
    expanded = os.path.expanduser(text)
    if os.path.dirname(expanded) or os.path.exists(expanded):
        return Path(os.path.abspath(expanded))
    found = shutil.which(expanded)
    return Path(os.path.abspath(found)) if found else Path(os.path.abspath(expanded))


def install_options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> InstallOptions:
    if args.engine_python and (args.venv or args.base_python):
        parser.error("--engine-python uses an existing engine: it does not go with --venv or --python")
    if args.weights_format and not args.weights:
        parser.error("--weights-format describes an imported file: give it with --weights FILE")
    if args.no_gimp and args.gimp_plugin_dir:
        parser.error("--no-gimp installs no plug-in: it does not go with --gimp-plugin-dir")
    if bool(args.server) != bool(args.token_file):
        parser.error("--server and --token-file go together: the service's address and its token file")
    if args.server:
        if args.no_gimp:
            parser.error("--server tells the plug-in where to send its jobs: it does not go with --no-gimp")
        if not re.match(r"^https?://[^/\s]+", args.server):
            parser.error("--server %r is not an http:// or https:// address such as https://gpu.example.org"
                         % args.server)
        token_path = _absolute(args.token_file)
        try:
            token = token_path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as error:
            parser.error("--token-file %s cannot be read (%s): copy the service's token file to this "
                         "computer first" % (token_path, error))
        if not token:
            parser.error("--token-file %s is empty: copy the service's token file again" % token_path)
    gimp_version = None
    if args.gimp_version:
        try:
            gimp_version = normalize_gimp_version(args.gimp_version)
        except ValueError as error:
            parser.error(str(error))
    return InstallOptions(
        venv=_absolute(args.venv),
        engine_python=resolve_program(args.engine_python),
        base_python=resolve_program(args.base_python),
        torch=args.torch,
        torch_index_url=args.torch_index_url,
        weights_file=_absolute(args.weights),
        no_weights=args.no_weights,
        weights_backbone=args.weights_backbone,
        weights_format=args.weights_format,
        gimp_plugin_dirs=[_absolute(d) for d in args.gimp_plugin_dir],
        no_gimp=args.no_gimp,
        gimp_version=gimp_version,
        data_dir=_absolute(args.data_dir),
        demo=args.demo,
        demo_output=_absolute(args.demo_output),
        server=args.server.rstrip("/") if args.server else None,
        server_token_file=_absolute(args.token_file),
    )


def project_version(repo_root: Path) -> str:
    """The version in pyproject.toml's [project] table (no tomllib before Python 3.11)."""
    try:
        text = (repo_root / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return "unknown"
    section = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    found = re.search(r'^version\s*=\s*"([^"]+)"', section.group(1), re.M) if section else None
    return found.group(1) if found else "unknown"


def gather_facts(args: argparse.Namespace, options: InstallOptions) -> HostFacts:
    platform = args.platform or current_platform()
    home = Path(os.path.expanduser("~"))
    env = dict(os.environ)
    needs_discovery = not options.gimp_plugin_dirs
    needs_gpu_probe = options.engine_python is None and options.torch == "auto" and not options.torch_index_url
    return HostFacts(
        platform=platform,
        home=home,
        env=env,
        cwd=Path(os.getcwd()),
        repo_root=REPO_ROOT,
        project_version=project_version(REPO_ROOT),
        plugin_source=_absolute(args.plugin_source) or REPO_ROOT / "plugin",
        installer_python=Path(sys.executable),
        gimp_profiles=find_gimp_profiles(platform, home, env) if needs_discovery else [],
        nvidia_gpu=has_nvidia_gpu() if needs_gpu_probe else False,
    )


def _print_lines(lines: Sequence[str]) -> None:
    for line in lines:
        print(line)
    sys.stdout.flush()


def _quoted(path: object) -> str:
    text = str(path)
    return '"%s"' % text if " " in text else text


def _uninstall_command(args: argparse.Namespace) -> str:
    command = "python3 installer/install.py --uninstall"
    return command + (' --data-dir "%s"' % _absolute(args.data_dir) if args.data_dir else "")


def _add_plugin_command(args: argparse.Namespace, plan: InstallPlan) -> str:
    """The command that adds the plug-in to an engine installed without it: quick, no pip, no download."""
    command = "python3 %s --engine-python %s" % (_quoted(REPO_ROOT / "installer" / "install.py"),
                                                 _quoted(plan.engine.python))
    return command + (" --data-dir %s" % _quoted(_absolute(args.data_dir)) if args.data_dir else "")


def _record_demo_files(plan: InstallPlan, created: List[Path]) -> None:
    """The demo's image and the engine log it started are the installer's doing: --uninstall removes
    them (unless someone replaced them)."""
    changes = Changes(created_files=created)
    save_manifest(plan.manifest_path, merge(load_manifest(plan.manifest_path), changes, plan.project_version))


def run_install(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    options = install_options(args, parser)
    plan = build_install_plan(options, gather_facts(args, options))
    _print_lines(describe_plan(plan))
    preflight(plan)
    no_gimp = no_gimp_lines(plan, _add_plugin_command(args, plan), args.dry_run) if plan.gimp_searched else []
    if args.dry_run:
        _print_lines(dry_run_checks(plan, os.environ, args.weights_url))
        _print_lines([""] + no_gimp if no_gimp else [])
        print("\nDry run: the checks passed and nothing was changed.")
        return ExitCode.NO_GIMP if no_gimp else ExitCode.OK
    print()
    report = execute_install(plan, verbose=args.verbose)
    _print_lines(install_summary(report, _uninstall_command(args)))
    if plan.demo:
        print()
        demo_log = engine_log_path(plan.logs_dir)
        existed = {path: path.exists() for path in (plan.demo.output, demo_log)}
        result = run_demo(plan.engine.python, plan.demo, log_dir=plan.logs_dir)
        created = [path for path in (result, demo_log) if not existed.get(path, False) and path.is_file()]
        if created:
            _record_demo_files(plan, created)
        print("Demo result: %s" % result)
    if no_gimp:
        _print_lines([""] + no_gimp)
        return ExitCode.NO_GIMP
    return ExitCode.OK


def run_uninstall(args: argparse.Namespace) -> int:
    platform = args.platform or current_platform()
    data_dir = _absolute(args.data_dir) or user_data_dir(platform, Path(os.path.expanduser("~")), os.environ)
    manifest_path = data_dir / MANIFEST_NAME
    manifest = load_manifest(manifest_path)
    if manifest is None or manifest.is_empty():
        print("Nothing to uninstall: there is no install record at %s." % manifest_path)
        if not args.data_dir:
            print("(An install made with --data-dir keeps its record there: pass the same --data-dir.)")
        return ExitCode.OK
    _print_lines(describe_uninstall(manifest, args.dry_run))
    if args.dry_run:
        print("\nDry run: nothing was removed.")
        return ExitCode.OK
    report = execute_uninstall(manifest_path, manifest)
    print("\nRemoved %d item%s." % (len(report.removed), "" if len(report.removed) == 1 else "s"))
    for note in report.kept:
        print("  kept %s" % note)
    raise_for_failures(report, manifest_path)
    if manifest.plugin_folders:
        print("Restart GIMP to drop the filter from its menus.")
    return ExitCode.OK


def _crash_log(args: Optional[argparse.Namespace]) -> Path:
    """Write the traceback of an unexpected failure where the user can find it."""
    folder = Path(tempfile.gettempdir())
    path = folder / ("nst-gimp-install-error-%s.log" % time.strftime("%Y%m%d-%H%M%S"))
    with open(str(path), "w", encoding="utf-8") as log:
        log.write("installer arguments: %r\n\n" % (sys.argv[1:],))
        traceback.print_exc(file=log)
    return path


def _report_error(error: InstallError) -> None:
    print("\nerror: %s" % error.message, file=sys.stderr)
    if error.hint:
        print(error.hint, file=sys.stderr)
    sys.stderr.flush()


def main(argv: Optional[List[str]] = None) -> int:
    for stream in (sys.stdout, sys.stderr):
        try:  # a path with an odd character must not crash a Windows console
            stream.reconfigure(errors="replace")
        except (AttributeError, ValueError):
            pass
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(run_uninstall(args) if args.uninstall else run_install(args, parser))
    except InstallError as error:
        _report_error(error)
        return int(error.code)
    except KeyboardInterrupt:
        print("\ninterrupted: the step under way was rolled back.", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except Exception as error:  # a bug: say where the details are instead of a bare traceback
        log = _crash_log(args)
        print("\nerror: unexpected failure (%s: %s).\nThe details are in %s; please include that file when "
              "you report it." % (type(error).__name__, error, log), file=sys.stderr)
        return int(ExitCode.FAILED)
