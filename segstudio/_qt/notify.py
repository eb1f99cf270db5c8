"""Telling the user: the status line and napari notifications, from every part of the session."""

from __future__ import annotations

from napari.utils import notifications
from qtpy.QtCore import QObject, Signal

from segstudio.core.errors import UserInputError

#: Prefix of segstudio's napari notifications.
PREFIX = "segstudio: "


def _show(kind: str, message: str) -> None:
    try:
        getattr(notifications, f"show_{kind}")(PREFIX + message)
    except Exception:  # noqa: BLE001 - never fail while reporting
        pass


class Notifier(QObject):
    """One status line and one error channel for the whole session.

    ``status`` and ``error`` feed the widget's status line; errors (and chosen infos) also
    become napari notifications. Once :attr:`muted` (the session ended), nothing is shown, but
    :attr:`last_error` still records what went wrong.
    """

    status = Signal(str)
    error = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.last_error: str | None = None
        self.muted = False

    def info(self, message: str, *, popup: bool = False) -> None:
        """Show ``message`` in the status line (and as a napari notification: ``popup``)."""
        if self.muted:
            return
        self.status.emit(message)
        if popup:
            _show("info", message)

    def fail(self, message: str, *, popup: bool = True) -> None:
        """Show an error in the status line and (``popup``) as a napari notification."""
        self.last_error = message
        if self.muted:
            return
        self.error.emit(message)
        if popup:
            _show("error", message)

    def worker_failed(self, exc: BaseException, what: str = "") -> None:
        """A worker raised: a user mistake is shown as it is, anything else with its type."""
        message = str(exc) if isinstance(exc, UserInputError) else f"{type(exc).__name__}: {exc}"
        self.fail(f"{what}: {message}" if what else message)
