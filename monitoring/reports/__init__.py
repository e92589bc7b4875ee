"""Reports: the combined report (:mod:`.reporting`), the dashboard page, model cards
and their plots, and the pages' browser side (:mod:`.browser`).

Nothing is imported here: :mod:`.browser` uses only the standard library, so the
command line loads it (and starts Chromium) before the heavy libraries of the rest.
"""
