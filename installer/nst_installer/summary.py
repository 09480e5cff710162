"""The few lines printed after an install: what went where, how to find the filter, what is left."""

from __future__ import annotations

from typing import List

from .engine import describe_doctor, weights_ready
from .steps import InstallReport

MENU_PATH = "Filters > Artistic > Neural Style Transfer..."


def install_summary(report: InstallReport, uninstall_command: str) -> List[str]:
    plan = report.plan
    python = plan.engine.python
    lines = ["", "Installed Neural Style Transfer %s." % plan.project_version]
    if report.venv_action:
        lines.append("  engine:   %s (virtual environment %s, %s)" % (python, report.venv_action,
                                                                   plan.engine.venv_dir))
    else:
        lines.append("  engine:   %s" % python)
    lines.append("            %s" % describe_doctor(report.doctor))
    if report.torch_note:
        lines.append("            note: %s" % report.torch_note)
    weights_missing = report.weights == "skipped" and weights_ready(report.doctor) is not True
    in_use = report.doctor.get("weights_in_use")
    if report.weights == "already there":
        lines.append("  weights:  already there%s" % (": %s" % in_use["description"]
                                                    if isinstance(in_use, dict) and in_use.get("description")
                                                    else " (the engine found them)"))
    elif report.weights != "skipped":
        lines.append("  weights:  %s%s" % (report.weights, " (%s)" % report.weights_file
                                            if report.weights_file else ""))
    elif weights_missing:
        lines.append("  weights:  not prepared (--no-weights)")
    else:
        lines.append("  weights:  already there (the engine found them)")
    for folder in report.folders:
        lines.append("  plug-in:  %s  [%s%s]" % (folder.target_folder, folder.label,
                                                 ", replaced" if folder.replaced else ""))
        if folder.backup is not None:
            lines.append("            the folder it replaced held files the installer had not written; "
                         "it was moved to %s" % folder.backup)
    if any("Flatpak" in f.label or "Snap" in f.label for f in report.folders):
        lines.append("            note: Flatpak and Snap GIMPs run plug-ins in a sandbox, which may keep them "
                     "from starting the engine above; a native GIMP is the tested setup.")
    lines.append("  logs:     %s" % plan.logs_dir)
    lines.append("  record:   %s" % plan.manifest_path)
    lines.append("")
    if plan.targets:
        lines.append("Next: restart GIMP, open an image, then choose %s" % MENU_PATH)
    else:
        lines.append("Next (engine only, no plug-in): %s -m nst_core stylize CONTENT STYLE -o OUT" % python)
    if weights_missing:
        lines.append("Still to do: the engine needs its weights before the first use. Either let it "
                     "download them once:")
        lines.append("    %s -m nst_core weights fetch" % python)
        lines.append("or, on a machine without internet, import a downloaded file (vgg19-dcbb9e9d.pth; a file the "
                     "engine does not recognise also needs --weights-format caffe|torchvision):")
        lines.append("    %s -m nst_core weights import FILE" % python)
    lines.append("To remove everything this installed: " + uninstall_command)
    return lines
