"""Qt side of segstudio: the dock widget, its controller, thread workers and the app."""

from segstudio._qt._compat import guard_singletons

guard_singletons()
