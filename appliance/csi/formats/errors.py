"""The one exception type every parser raises on bad input."""


class CsiFormatError(ValueError):
    """Input that is not a valid record of the format; ``where`` is a byte offset or a line number."""

    def __init__(self, message: str, *, offset: int | None = None, line: int | None = None) -> None:
        self.offset = offset
        self.line = line
        where = f"line {line}: " if line is not None else f"byte {offset}: " if offset is not None else ""
        super().__init__(f"{where}{message}")
