"""Errors that carry a message fit to show a user as it is."""


class BadInput(ValueError):
    """Input the user can fix: the message says what is wrong in one line, without a traceback.

    Never put a whole input, a file path outside the workspace or SQL text into the message.
    """


class StorageError(BadInput):
    """The workspace could not be written (disk full, file too large, no permission).

    Not the user's input, but shown the same way: one clear line, and nothing half-written.
    """
