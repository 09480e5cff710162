"""The engine's failures, each with the exit code and protocol name that docs/PROTOCOL.md promises.

Every message is one line written for a person: what went wrong and what to do about it.
"""


class NSTError(Exception):
    """Base of the errors the engine reports to its caller (never shown as a traceback)."""

    code = "internal"
    exit_code = 1


class BadInput(NSTError, ValueError):
    """A missing, unreadable or unsupported input, an unwritable output, a nonsense value."""

    code = "bad_input"
    exit_code = 2


class WeightsMissing(NSTError):
    """No weights file could be found or downloaded."""

    code = "weights_missing"
    exit_code = 3


class Cancelled(NSTError):
    """Stopped on request (signal, ``cancel`` on stdin, stdin closed, or a stop callback)."""

    code = "cancelled"
    exit_code = 4

    def __init__(self, message="cancelled: no output was written"):
        super().__init__(message)


class OutOfMemory(NSTError):
    """The device ran out of memory even after falling back to a smaller size."""

    code = "out_of_memory"
    exit_code = 5
