"""Qt side of segstudio: the dock widget, the controller facade over the session's parts
(settings, image, layers, training, preview, results, projects, notify, workers) and the app."""

from segstudio._qt._compat import guard_singletons

guard_singletons()
