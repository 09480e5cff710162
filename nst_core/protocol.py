"""The JSON-lines event stream of ``nst-core stylize --progress jsonl`` (schema: docs/PROTOCOL.md).

Kept free of torch so that callers (and ``--help``) stay light.
"""

import json
import math

# The ``protocol`` field of the ``start`` event; bumped when a field or an event is removed or renamed.
PROTOCOL_VERSION = 1


def _finite(value):
    # JSON has no NaN/Infinity; a reader in another language would choke on Python's spelling.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def encode_event(event, **fields):
    """One protocol line (without the newline)."""
    # ASCII with \u escapes: valid whatever encoding the caller's stdout has (a Windows code page, a
    # file name that is not UTF-8), and every JSON reader decodes it.
    return json.dumps(_finite({"event": event, **fields}), ensure_ascii=True, separators=(", ", ": "))


class JsonlWriter:
    """Writes events to a text stream, one per line, flushed at once so a reader sees them live."""

    def __init__(self, stream):
        self.stream = stream

    def emit(self, event, **fields):
        self.stream.write(encode_event(event, **fields) + "\n")
        self.stream.flush()
