"""CSI in: the ``CsiFrame`` contract, wire-format parsers (``formats``), live and recorded sources
(``sources``) and the physics-based room simulator (``simulator``).

Imports nothing from ``pose``, ``hub``, ``api`` or ``integrations``.
"""

from appliance.csi.frame import CsiFrame, WireFormat

__all__ = ["CsiFrame", "WireFormat"]
