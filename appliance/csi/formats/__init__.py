"""Wire formats: parsers from bytes (or files) to ``CsiFrame``.

Every parser raises only ``CsiFormatError`` on bad input, which says where (byte offset or line) and why.
Imports only ``appliance.csi.frame`` and numpy.
"""

from appliance.csi.formats.errors import CsiFormatError

__all__ = ["CsiFormatError"]
