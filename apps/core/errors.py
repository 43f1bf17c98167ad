"""Errors the services raise, which every caller (API, admin, commands) turns into its own answer.

Bad input is Django's `ValidationError` (or a subclass naming the field and line); "the object is not
in a state that allows this" is a `StateConflict`; "this request contradicts an earlier one" is an
`Unprocessable`. config/api/errors.py maps each once for the API (400, 409, 422).
"""


class StateConflict(Exception):
    """The object is not in a state that allows the operation (cancel a finished run, delete a key
    that active runs use, replay a resolved failure). `code` is the API's machine-readable name."""

    code = "conflict"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ValueError):
    """Bad input a service found, naming the field (and the line of an uploaded file) at fault.
    `str()` reads as a sentence for the command line ("line 3: `input` is empty")."""

    def __init__(self, message: str, *, field: str | None = None, line: int | None = None) -> None:
        self.field = field
        self.line = line
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"{where}{message}")
        self.message = message


class Unprocessable(Exception):
    """The request is well formed but contradicts an earlier one (an Idempotency-Key reused with a
    different body). `code` is the API's machine-readable name."""

    code = "unprocessable"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
