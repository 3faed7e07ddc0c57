"""Where the benches find the real captures: ``../shared/captures`` beside the checkout, or
``$INVISPOSE_CAPTURES``. A bench that needs one says so, or falls back to generated data, when absent."""

import os
from pathlib import Path

CAPTURES = Path(
    os.environ.get("INVISPOSE_CAPTURES", Path(__file__).resolve().parents[2] / "shared" / "captures")
)
