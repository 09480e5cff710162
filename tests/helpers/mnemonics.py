"""The mnemonics (underlined letters) of the plug-in's GIMP 3 dialog: each label's own, none of them one
of GIMP's dialog buttons' (a clash makes GIMP print "duplicate mnemonic" and one of them stop working)."""

import re


def mnemonic(label):
    """The mnemonic letter of a GTK label ("_OK" -> "o"), or None."""
    match = re.search(r"_([^_])", label.replace("__", ""))
    return match.group(1).lower() if match else None


# GIMP 3.0's GimpProcedureDialog buttons (libgimpui/libgimpwidgets 3.0.4): a parameter label
# must not use their letters (GIMP prints "duplicate mnemonic" and one of them stops working).
PROCEDURE_DIALOG_BUTTONS = ("_Help", "_Reset", "_Cancel", "_OK", "_Load Saved Settings",
                            "_Save Settings")


def mnemonic_clashes(labels, buttons=PROCEDURE_DIALOG_BUTTONS):
    """[(letter, [labels])] for each mnemonic used more than once among labels and buttons."""
    users = {}
    for label in list(labels) + list(buttons):
        letter = mnemonic(label)
        if letter:
            users.setdefault(letter, []).append(label)
    return sorted((letter, names) for letter, names in users.items() if len(names) > 1)
