"""Errors that the CLI turns into a one-line message and exit code 2."""


class BadInput(Exception):
    """The user's input (target, archive, file) is unusable; nothing was written."""


class ToolchainMissing(BadInput):
    """An ecosystem's toolchain is not installed; the message names the install command."""
