"""Who may create the first admin, and when that needs a setup code.

A new box (its data directory holds no login secret yet) has no accounts and never had any: the web UI
asks for the first admin, and whoever reaches the box first owns it, as with Home Assistant's onboarding.

A box that started before and has no users either lost them (its database was deleted, emptied, replaced
by a restore or moved aside as corrupt) or never got its first admin in its first run; from outside, the
two look alike. Re-opening onboarding to the first visitor would hand a box that lost its users to anyone
on the LAN, so after the first start, creating the first admin needs proof of access to the box itself: a
one-time setup code, printed in the service's log at every start until an admin exists, and by
``invispose user setup-code`` (which reads ``DATA_DIR/setup_code``, mode 0600, like the login secret).
The situation is logged as a warning. The code is spent when the first admin is made with it;
``invispose user add`` (shell access is proof enough) also ends onboarding.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

log = logging.getLogger(__name__)

SETUP_CODE_FILE = "setup_code"
SETUP_CODE_MODE = 0o600
# Letters and digits that cannot be misread for one another (no 0/O, 1/I), in groups of four: 60 bits.
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_CODE_GROUPS, _CODE_GROUP_LENGTH = 3, 4


@dataclass(slots=True)
class Onboarding:
    """Whether creating the first admin needs a setup code, and which."""

    data_dir: Path
    code: str | None

    @property
    def code_required(self) -> bool:
        return self.code is not None

    def code_matches(self, given: str | None) -> bool:
        """Compared without case, spaces or dashes, in constant time."""
        if self.code is None or given is None:
            return False
        return hmac.compare_digest(_normalized(given).encode(), _normalized(self.code).encode())

    def finish(self) -> None:
        """The first admin exists: the code is spent."""
        self.code = None
        clear_setup_code(self.data_dir)


ONBOARDING = web.AppKey("onboarding", Onboarding)


def start_onboarding(data_dir: Path, *, users: int, new_box: bool) -> Onboarding:
    """The onboarding state at start: open on a new box, by setup code on one that lost its users."""
    if users or new_box:
        onboarding = Onboarding(data_dir, None)
        if users:
            onboarding.finish()  # a code left over from before an admin was made with the CLI
        return onboarding
    code = read_setup_code(data_dir) or _create_setup_code(data_dir)
    log.warning(
        "THIS BOX HAS NO USER ACCOUNTS, BUT IT HAS STARTED BEFORE: its first admin was never created, or "
        "its database was lost, emptied, replaced or moved aside as corrupt. Creating the first admin in "
        "the web UI now needs this setup code (also shown by 'invispose user setup-code'); or run "
        "'invispose user add NAME --admin'. If you did not expect this, find out who had access to the box",
        extra={"fields": {"setup_code": code, "data_dir": str(data_dir)}},
    )
    return Onboarding(data_dir, code)


def read_setup_code(data_dir: Path) -> str | None:
    """The pending setup code, if onboarding needs one."""
    try:
        return (data_dir / SETUP_CODE_FILE).read_text().strip() or None
    except FileNotFoundError:
        return None


def clear_setup_code(data_dir: Path) -> None:
    (data_dir / SETUP_CODE_FILE).unlink(missing_ok=True)


def _create_setup_code(data_dir: Path) -> str:
    groups = (
        "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_GROUP_LENGTH))
        for _ in range(_CODE_GROUPS)
    )
    code = "-".join(groups)
    fd = os.open(data_dir / SETUP_CODE_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, SETUP_CODE_MODE)
    with os.fdopen(fd, "w") as file:
        file.write(code + "\n")
    return code


def _normalized(code: str) -> str:
    return "".join(c for c in code.upper() if c.isalnum())
