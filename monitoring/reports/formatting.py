"""How reports show values, and the templates every page and document comes from.

:data:`TEMPLATES` loads ``monitoring/reports/templates/`` without a Flask app, so
the command line renders the same way as the server. ``*.html`` templates are
autoescaped; Markdown and text templates are not. Templates show values with
the ``format_value`` filter and fail loudly on a misspelt name (``StrictUndefined``).
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


def format_value(value: Any) -> str:
    """A value as people read it in a report.

    Examples
    --------
    >>> [format_value(v) for v in (None, True, 0.123456, 3)]
    ['n/a', 'yes', '0.1235', '3']
    """
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


TEMPLATES = Environment(
    loader=PackageLoader("monitoring.reports"),
    autoescape=select_autoescape(enabled_extensions=("html",), default=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
TEMPLATES.filters["format_value"] = format_value


def render(name: str, **context: Any) -> str:
    """The template ``name`` (a file in ``templates/``) rendered with ``context``."""
    return TEMPLATES.get_template(name).render(**context)
