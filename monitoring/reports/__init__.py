"""Reports: the combined report, the dashboard page, model cards and their plots."""

from monitoring.reports.reporting import generate_report

__all__ = ["generate_report"]
