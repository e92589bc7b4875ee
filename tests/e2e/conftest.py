"""End-to-end tests: real processes on loopback (gunicorn, Chromium, killed writers,
load, benchmark scripts). Each is marked ``e2e``; ``make test-fast`` leaves them out."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith("tests/e2e/"):
            item.add_marker(pytest.mark.e2e)
