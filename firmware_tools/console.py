"""``console``: send one command to esp-csi's console (``radar --csi_start``, ``sta SSID PASS``, ``ping``) and
show what the node answers.

esp-csi's ``console_test`` runs ESP-IDF's REPL with the prompt ``csi>``. A command is sent as its text and
CR LF (as esp-csi's own ``esp_csi_tool.py`` does); the answer is every line until the prompt comes back, or
until the node has been quiet for a moment after answering, or the timeout. ``CSI_DATA`` lines that stream
meanwhile are counted, not shown.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Final

from appliance.csi.formats.esp_csv import LINE_TAG
from firmware_tools.serial_io import LineReader, open_port

DEFAULT_PROMPT: Final = "csi>"
QUIET_S: Final = 0.5
_TAG = LINE_TAG.encode()


@dataclass(slots=True)
class ConsoleAnswer:
    command: str
    lines: list[str] = field(default_factory=list)
    prompt_seen: bool = False
    csi_lines: int = 0

    def as_json(self) -> dict[str, object]:
        return {
            "command": self.command,
            "answer": self.lines,
            "prompt_seen": self.prompt_seen,
            "csi_lines_skipped": self.csi_lines,
        }


def run_command(
    port_url: str, command: str, *, baud: int, timeout_s: float, prompt: str = DEFAULT_PROMPT
) -> ConsoleAnswer:
    """Send ``command`` and collect the answer."""
    answer = ConsoleAnswer(command)
    port = open_port(port_url, baud)
    with port:
        port.reset_input_buffer()
        port.write(command.encode("utf-8") + b"\r\n")
        port.flush()
        reader = LineReader(port)
        start = time.monotonic()
        heard = False  # the echo of the command, or any answer line
        last_output: float | None = None
        for arrived, line in reader.lines_until(start + timeout_s):
            if line is None:
                if heard and reader.pending.rstrip().endswith(prompt.encode()):
                    answer.prompt_seen = True
                    break
                if last_output is not None and arrived - last_output >= QUIET_S:
                    break
                continue
            if _TAG in line:
                answer.csi_lines += 1
                continue
            text = line.decode("utf-8", errors="replace").strip()
            if text.startswith(prompt):
                text = text[len(prompt) :].strip()
            heard = True
            if not text or text == command:  # the console echoes what it was sent
                continue
            answer.lines.append(text)
            last_output = arrived
    return answer
