"""The project's exceptions: one base, and the user errors apart from the bugs.

Every error raised on purpose derives from ``CnnCodesError``. ``UserError`` marks the
ones caused by what the user gave (settings, files, the network, the disk): the command
line prints those in one line that says what to fix, and anything else as an internal
error with a hint to rerun with ``--debug`` (DVC's split of ``DvcException`` and
"unexpected error"). Each user error also derives from the built-in class that Python code
would catch (``ValueError`` for a refused setting, ``OSError`` for a file), so scikit-learn's
conventions and ``except OSError`` keep working.

This module imports nothing of the project: every package and module may raise these.
"""

from __future__ import annotations

__all__ = ["CnnCodesError", "UserError", "SettingError", "DataError", "FileInputError", "MissingFileError"]


class CnnCodesError(Exception):
    """The base of every exception the project raises on purpose."""


class UserError(CnnCodesError):
    """Caused by the user's input, not by a bug: the message says what to fix."""


class SettingError(UserError, ValueError):
    """A setting's value is refused (a ``Recipe``, ``Runtime``, ``Tuning`` or ``Split`` field,
    a config key, a keyword of the Python API): the message names the setting and the valid values."""


class DataError(UserError, ValueError):
    """The images, labels or a manifest's lines cannot be used as given (an empty label, a
    path listed twice): the message names where, and what to change."""


class FileInputError(UserError, OSError):
    """A file or folder the user named is missing, unreadable or not what it should be."""


class MissingFileError(FileInputError, FileNotFoundError):
    """A file or folder the user named (or an earlier stage should have written) does not exist."""
