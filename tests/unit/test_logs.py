"""The text log writes what comes from outside on one line, with its control characters escaped."""

from __future__ import annotations

import json
import logging

from appliance.logs import JsonFormatter, TextFormatter

# A name as a client may send it: a forged second log line, a terminal escape, a carriage return.
HOSTILE = (
    "ha\n2026-01-01T00:00:00 INFO    appliance.api.auth: first admin created user=mallory\x1b[2J\r\x00\u2028"
)


def _record(message: str, fields: dict[str, object]) -> logging.LogRecord:
    record = logging.LogRecord("appliance.api.auth", logging.INFO, __file__, 1, message, (), None)
    record.fields = fields
    return record


def test_text_lines_escape_control_characters_in_messages_and_fields() -> None:
    line = TextFormatter().format(_record(f"API token created for {HOSTILE}", {"name": HOSTILE, HOSTILE: 1}))
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\x00" not in line
    assert "\u2028" not in line
    assert line.count("first admin created") == 3  # still readable, on the one line
    assert "ha\\n2026-01-01" in line and "\\x1b[2J\\r\\x00\\u2028" in line


def test_ordinary_text_is_unchanged() -> None:
    line = TextFormatter().format(_record("listening", {"url": "http://127.0.0.1:8099/", "room": "Café"}))
    assert line.endswith("appliance.api.auth: listening url=http://127.0.0.1:8099/ room=Café")


def test_json_lines_keep_the_text_exactly() -> None:
    line = JsonFormatter().format(_record("token", {"name": HOSTILE}))
    assert "\n" not in line and json.loads(line)["name"] == HOSTILE
