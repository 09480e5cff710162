"""Exit codes and the one exception type that carries a message for a person."""

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1  # unexpected failure: the message names a log with the details
    USAGE = 2  # a bad command line or a missing input file
    NO_GIMP = 3  # no GIMP profile found: the engine was installed without the plug-in
    NO_PERMISSION = 4  # a folder that must be written is not writable
    NO_NETWORK = 5  # a download failed (packages or weights)
    ENGINE_INSTALL = 6  # creating the virtual environment or a pip step failed
    ENGINE_CHECK = 7  # the engine does not start (`-m nst_core doctor --json` failed)
    WEIGHTS = 8  # importing or fetching the weights failed for another reason than the network
    DEMO = 9  # the demo run failed; the installation itself is complete
    INTERRUPTED = 130  # Ctrl-C


EXIT_CODES_HELP = """exit codes:
  0    installed (or uninstalled, or the dry run's checks passed)
  1    unexpected failure; the message names a log file with the details
  2    bad command line, or a file given on it is missing
  3    no GIMP found (no GIMP/<version> profile folder): the engine (and the --demo run) were
       installed, the plug-in was not; the output names the folders searched and the command that
       adds the plug-in once GIMP has been started (or use --gimp-plugin-dir DIR; --no-gimp: exit 0)
  4    no write permission for a folder the installer must write to
  5    no network for a download (packages or weights): see --weights FILE and --no-weights; with
       --dry-run: the package index or the weights' download cannot be reached
  6    creating the engine's virtual environment or installing packages failed (log named)
  7    the engine does not start (`PYTHON -m nst_core doctor --json` failed)
  8    importing or fetching the weights failed (not a network problem)
  9    the --demo run failed (the installation itself is complete)
  130  interrupted (Ctrl-C); the step under way was rolled back"""


class InstallError(Exception):
    """A failure with a message for a person: what happened (``message``) and what to do (``hint``)."""

    def __init__(self, code, message, hint=None):
        super().__init__(message)
        self.code = ExitCode(code)
        self.message = message
        self.hint = hint

    def __str__(self):
        return self.message if not self.hint else self.message + "\n" + self.hint
