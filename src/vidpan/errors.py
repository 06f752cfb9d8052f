"""Errors raised for bad user input.

Every problem with a user's files, configs or arguments is raised as :class:`InputError` with a
message that names the file, the field and what was expected. The command line turns it into a
one-line message on stderr and exit code 2; library users can catch it.
"""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad user input: a file, field or argument that is missing, malformed or inconsistent."""

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        super().__init__(f"{path}: {message}" if path is not None else message)
