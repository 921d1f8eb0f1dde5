"""The one error a decoder raises: the body cannot be decoded at all (an HTTP 400)."""

from __future__ import annotations


class DecodeError(ValueError):
    """The request body is not a valid message of the expected format.

    `str(error)` is a human-readable explanation fit for the body of an HTTP 400 answer; it
    never contains the raw input beyond a short excerpt.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
