"""The checks every engine's JSON lines must pass, read from docs/PROTOCOL.md's tables.

Used on the real engine (tests/cli/test_cli.py) and on the fake engines (the plug-in client's tests), so
that the fakes the client is tested against speak the documented protocol too.
"""

import json
import re

import pytest

from helpers.repo import REPO

PROTOCOL_DOC = REPO / "docs" / "PROTOCOL.md"
KNOWN_EVENTS = {"start", "warning", "progress", "preview", "done", "error"}


def parse_jsonl(stdout):
    """stdout of a ``--progress jsonl`` run: only JSON objects, one per line, each with an ``event``."""
    events = []
    for number, line in enumerate(stdout.splitlines(), 1):
        try:
            event = json.loads(line)
        except ValueError:
            pytest.fail(f"stdout line {number} is not JSON: {line!r}")
        assert isinstance(event, dict) and isinstance(event.get("event"), str), f"line {number}: {line!r}"
        events.append(event)
    return events


def _section(title):
    text = PROTOCOL_DOC.read_text(encoding="utf-8")
    return text.split("## " + title, 1)[1].split("\n## ", 1)[0]


def _strip_parentheses(text):
    """(top-level text, {name: text of the parenthesis right after `name`})."""
    top, notes, depth, current, last_name = [], {}, 0, [], None
    for token in re.split(r"(\(|\)|`[^`]*`)", text):
        if token == "(":
            depth += 1
            if depth == 1:
                current = []
                continue
        elif token == ")":
            depth -= 1
            if depth == 0:
                if last_name is not None and last_name not in notes:
                    notes[last_name] = "".join(current)
                continue
        if depth == 0:
            top.append(token)
            if token.startswith("`"):
                last_name = token.strip("`")
            elif token.strip(" ,"):
                last_name = None
        else:
            current.append(token)
    return "".join(top), notes


def documented_events():
    """{event: (fields, open, {field: (subfields, open)})} from the table in PROTOCOL.md's "Output stream".

    ``open`` is True where the doc says "and more" (then a superset is allowed)."""
    table = {}
    for line in _section("Output stream").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not re.fullmatch(r"`\w+`", cells[0]):
            continue
        top, notes = _strip_parentheses(cells[2])
        fields = set(re.findall(r"`(\w+)`", top))
        nested = {}
        for name, note in notes.items():
            if note.strip().startswith("object:"):
                nested[name] = (set(re.findall(r"`(\w+)`", note)), "and more" in note)
        table[cells[0].strip("`")] = (fields, "and more" in top, nested)
    return table


def documented_frame_events():
    """{event: fields} from the event table in PROTOCOL.md's "Frames" section (``stylize-frames``)."""
    table = {}
    for line in _section("Frames").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not re.fullmatch(r"`\w+`", cells[0]):
            continue
        top, _ = _strip_parentheses(cells[2])
        table[cells[0].strip("`")] = set(re.findall(r"`(\w+)`", top))
    return table


def documented_exit_codes():
    """{exit code: name} from the table in PROTOCOL.md's "Exit codes"."""
    codes = {}
    for line in _section("Exit codes").splitlines():
        match = re.fullmatch(r"\|\s*(\d+)\s*\|\s*`(\w+)`\s*\|.*", line.strip())
        if match:
            codes[int(match.group(1))] = match.group(2)
    return codes


def documented_protocol_version():
    match = re.search(r"Protocol version: \*\*(\d+)\*\*", PROTOCOL_DOC.read_text(encoding="utf-8"))
    return int(match.group(1)) if match else None


def check_fields(event, spec):
    fields, open_, nested = spec
    keys = set(event) - {"event"}
    assert fields <= keys, f"{event['event']} lacks {sorted(fields - keys)}: {event}"
    if not open_:
        assert keys <= fields, f"{event['event']} has fields PROTOCOL.md does not list: {sorted(keys - fields)}"
    for name, (subfields, sub_open) in nested.items():
        inner = set(event[name])
        assert subfields <= inner, f"{event['event']}.{name} lacks {sorted(subfields - inner)}"
        if not sub_open:
            assert inner <= subfields, f"{event['event']}.{name} has unlisted {sorted(inner - subfields)}"


def check_event(event, table=None):
    """One event against PROTOCOL.md: a known event name with its documented fields."""
    table = table or documented_events()
    assert event.get("event") in table, f"an event PROTOCOL.md does not list: {event}"
    check_fields(event, table[event["event"]])
