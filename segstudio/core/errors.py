"""The one exception type for user mistakes (bad files, bad paintings, bad options)."""

from __future__ import annotations


class UserInputError(ValueError):
    """A problem with what the user gave us, worded as one line a user can act on.

    The CLI prints ``str(error)`` without a traceback and exits with code 2; the GUI shows it
    in the widget and as a napari notification.
    """
