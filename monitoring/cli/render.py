"""The readable output of each command: tables and summaries on stdout, drawn by rich.

Each function takes a command's result (the dict ``--json`` prints) and returns what
to print. On a terminal rich fits the tables to its width (long values fold onto more
lines, never cut) and may use colour; elsewhere (a pipe, a cron log) the text is plain
ASCII, each line as long as its content.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

Renderer = Callable[[Mapping[str, Any]], RenderableType]
PLAIN_WIDTH = 100_000  # when stdout is not a terminal: lines as long as their content
METRICS: tuple[tuple[str, str], ...] = (
    ("f1", "F1"),
    ("precision", "Precision"),
    ("recall", "Recall"),
    ("accuracy", "Accuracy"),
    ("roc_auc", "ROC AUC"),
)


def show(renderable: RenderableType) -> None:
    """Print ``renderable`` on stdout: for a terminal, sized to it; elsewhere plain ASCII
    rules and no trailing blanks (cron logs, pipes, ``grep``)."""
    out = sys.stdout
    if out.isatty():
        Console(file=out, highlight=False).print(renderable)
        return
    buffer = io.StringIO()
    console = Console(file=buffer, width=PLAIN_WIDTH, highlight=False, color_system=None)
    console.print(renderable)
    text = buffer.getvalue().replace("\u2500", "-")  # the header rule
    out.write("\n".join(line.rstrip() for line in text.splitlines()) + "\n")
    out.flush()


# -- formatting ------------------------------------------------------------------
def when(value: Any) -> str:
    """An ISO timestamp as ``YYYY-MM-DD HH:MM:SS`` (UTC as stored); ``-`` for none."""
    if not value:
        return "-"
    try:
        return datetime.fromisoformat(str(value)).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return str(value)


def num(value: Any, digits: int = 4) -> str:
    """A number with ``digits`` decimals (integers as they are); ``-`` for none."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def seconds(value: Any) -> str:
    return "-" if value is None else f"{value:.2f} s"


def yes_no(value: Any) -> str:
    return "yes" if value else "no"


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], align: str = "") -> Table:
    """A table with a header line; ``align`` has an ``l`` or ``r`` per column (numbers
    right-aligned; missing letters: ``l``)."""
    out = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for i, name in enumerate(columns):
        right = i < len(align) and align[i] == "r"
        out.add_column(name, justify="right" if right else "left", overflow="fold")
    for row in rows:
        out.add_row(*(str(cell) for cell in row))
    return out


def fields(pairs: Iterable[tuple[str, Any]]) -> Table:
    """``name  value`` lines, the names aligned."""
    out = Table.grid(padding=(0, 2))
    out.add_column(style="bold", no_wrap=True)
    out.add_column(overflow="fold")
    for name, value in pairs:
        out.add_row(name, str(value))
    return out


def metrics_table(columns: Mapping[str, Mapping[str, Any] | None]) -> Table:
    """One row per metric, one column per named set of metrics."""
    names = list(columns)
    return table(
        ["Metric", *names],
        [[label, *(num((columns[n] or {}).get(key)) for n in names)] for key, label in METRICS],
        "l" + "r" * len(names),
    )


def confusion(matrix: Sequence[Sequence[int]]) -> Table:
    rows = [[f"actual {i}", *(num(v) for v in row)] for i, row in enumerate(matrix)]
    columns = ["", *(f"predicted {j}" for j in range(len(matrix)))]
    return table(columns, rows, "l" + "r" * len(matrix))


# -- the commands ----------------------------------------------------------------
def ingest(result: Mapping[str, Any]) -> RenderableType:
    files = result["files"]
    rows = [
        [
            f["file_name"],
            f["status"],
            num(f["rows_read"]),
            num(f.get("rows_kept")),
            num(f.get("duplicates_removed")),
            num(f.get("rows_quarantined")),
            f.get("message") or "",
        ]
        for f in files
    ]
    summary = (
        f"Ingested {num(result['rows_read'])} rows from {len(files)} file(s): kept "
        f"{num(result['rows_kept'])}, {num(result['duplicates_removed'])} duplicate(s) removed, "
        f"{num(result['rows_quarantined'])} quarantined ({seconds(result['seconds'])})."
    )
    columns = ["File", "Status", "Read", "Kept", "Duplicates", "Quarantined", "Message"]
    return Group(table(columns, rows, "llrrrrl"), Text(""), Text(summary))


def train(result: Mapping[str, Any]) -> RenderableType:
    data = result.get("training_data") or {}
    head = fields(
        [
            ("Model version", result["version"]),
            ("Estimator", result["estimator"]),
            ("Trained at", when(result["trained_at"])),
            ("Training rows", f"{num(data.get('rows_used'))} of {num(data.get('rows'))}"),
            ("Features", ", ".join(result["features"])),
        ]
    )
    scores = {"Training": result.get("training_score"), "Cross-validation": result.get("cv_score")}
    return Group(head, Text(""), metrics_table(scores))


def score(result: Mapping[str, Any]) -> RenderableType:
    head = fields(
        [
            ("Model version", result.get("model_version") or "-"),
            ("Test rows", num(result["n_rows"])),
        ]
    )
    parts: list[RenderableType] = [head, Text(""), metrics_table({"Test data": result})]
    if result.get("confusion_matrix"):
        parts += [Text(""), confusion(result["confusion_matrix"])]
    return Group(*parts)


def deploy(result: Mapping[str, Any]) -> RenderableType:
    return fields(
        [
            ("Deployed", result["model_version"]),
            ("Previous", result.get("previous_version") or "none"),
            ("Test F1", num(result.get("f1"))),
        ]
    )


def rollback(result: Mapping[str, Any]) -> RenderableType:
    return fields(
        [
            ("Live now", result["model_version"]),
            ("Was", result.get("previous_version") or "none"),
            ("Test F1", num(result.get("f1"))),
        ]
    )


def versions(result: Mapping[str, Any]) -> RenderableType:
    entries = result["versions"]
    if not entries:
        return Text("No model is deployed yet: `python -m monitoring setup` deploys the first.")
    rows = [
        [
            v["version"],
            when(v["trained_at"]),
            when(v["deployed_at"]),
            v.get("estimator") or "-",
            num(v.get("f1")),
            "live" if v["live"] else "",
        ]
        for v in entries
    ]
    columns = ["Version", "Trained", "Deployed", "Estimator", "Test F1", "Live"]
    return table(columns, rows, "llllrl")


def diagnose(result: Mapping[str, Any]) -> RenderableType:
    timing = table(
        ["Step", "Runs", "Mean", "Min", "Max"],
        [
            [step, t["runs"], seconds(t["mean"]), seconds(t["min"]), seconds(t["max"])]
            for step, t in result["execution_time"].items()
        ],
        "lrrrr",
    )
    parts: list[RenderableType] = [Text("Execution time", style="bold"), timing]
    if "summary" in result:
        missing = {m["column"]: m for m in result.get("missing_data", [])}
        stats = table(
            ["Column", "Mean", "Median", "Std", "Missing"],
            [
                [
                    s["column"],
                    num(s["mean"], 2),
                    num(s["median"], 2),
                    num(s["std"], 2),
                    num((missing.get(s["column"]) or {}).get("missing_count")),
                ]
                for s in result["summary"]
            ],
            "lrrrr",
        )
        parts += [Text(""), Text("Ingested data", style="bold"), stats]
    deps = result["dependencies"]
    packages = table(
        ["Package", "Required", "Installed", "Latest", "Status"],
        [
            [
                p["package"],
                p.get("required") or "",
                p.get("installed") or "-",
                p["latest"],
                p["status"],
            ]
            for p in deps["packages"]
        ],
    )
    parts += [Text(""), Text("Dependencies", style="bold"), packages]
    return Group(*parts)


def report(result: Mapping[str, Any]) -> RenderableType:
    lines = [f"Report of model {result.get('model_version') or '-'}:"]
    lines += [f"  {path}" for path in result["files"]]
    return Text("\n".join(lines))


def drift(result: Mapping[str, Any]) -> RenderableType:
    verdict = "DRIFT" if result["dataset_drift"] else "no drift"
    head = Text(
        f"Dataset drift: {verdict} ({result['n_drifted']} of {result['n_columns']} columns "
        f"drifted; the dataset drifts when {num(result['share_threshold'] * 100, 0)}% do)\n"
        f"Model {result.get('model_version') or '-'}, {result.get('source') or 'current'} data "
        f"({num(result.get('n_current'))} rows) against the training data "
        f"({num(result.get('n_reference'))} rows), {when(result.get('computed_at'))}"
    )
    rows = [
        [
            c["column"],
            c["kind"],
            c["method"],
            num(c["statistic"]),
            num(c.get("p_value")),
            num(c.get("threshold")),
            "DRIFT" if c["drifted"] else "",
        ]
        for c in result["columns"]
    ]
    columns = ["Column", "Kind", "Method", "Statistic", "p-value", "Threshold", "Drifted"]
    return Group(head, Text(""), table(columns, rows, "lllrrrl"))


def setup(result: Mapping[str, Any]) -> RenderableType:
    if result.get("skipped"):
        return Text(f"Model {result['model_version']} is already deployed; nothing to set up.")
    ingestion = result.get("ingestion") or {}
    pairs = [
        ("Deployed", result["model_version"]),
        ("Test F1", num((result.get("score") or {}).get("f1"))),
        (
            "Rows ingested",
            f"{num(ingestion.get('rows_read'))}, kept {num(ingestion.get('rows_kept'))}",
        ),
    ]
    files = (result.get("report") or {}).get("files") or []
    pairs += [("Report" if i == 0 else "", path) for i, path in enumerate(files)]
    return fields(pairs)


def run(result: Mapping[str, Any]) -> RenderableType:
    return fields(
        [
            ("Outcome", result.get("outcome") or "-"),
            ("Reason", result.get("reason") or "-"),
            ("Status", result.get("status") or "-"),
            ("Started", when(result.get("started_at"))),
            ("Finished", when(result.get("finished_at"))),
            ("Run", result.get("id") or "-"),
        ]
    )


def _duration(run: Mapping[str, Any]) -> str:
    try:
        start = datetime.fromisoformat(str(run["started_at"]))
        end = datetime.fromisoformat(str(run["finished_at"]))
    except (KeyError, TypeError, ValueError):
        return "-"
    return seconds((end - start).total_seconds())


def _seconds(value: float | None) -> str:
    """A duration in the largest unit that keeps it above 1 (``-`` for none)."""
    if value is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.1f} s"


def _median(summary: Mapping[str, Any], what: str) -> str:
    n = summary["n"]
    if not n:
        return "-"
    return f"{_seconds(summary['median'])} ({n} {what}{'s' if n > 1 else ''})"


def delivery(found: Mapping[str, Any]) -> RenderableType:
    """The delivery metrics (DORA, adapted) of :func:`monitoring.diagnostics.delivery`."""
    rate = found["change_failure_rate"]
    lead, restore = found["lead_time_seconds"], found["time_to_restore_seconds"]
    return Group(
        Text(f"Delivery over the last {found['window_days']:g} days"),
        fields(
            [
                ("Deployments", f"{found['deployments']} ({found['rollbacks']} rollbacks)"),
                ("Per week", f"{found['deployment_frequency_per_week']:.2f}"),
                ("Lead time (median)", _median(lead, "deployment")),
                ("Change failure rate", "-" if rate is None else f"{rate:.0%}"),
                ("Time to restore (median)", _median(restore, "restore")),
            ]
        ),
    )


def history(result: Mapping[str, Any]) -> RenderableType:
    runs = result["runs"]
    found = result.get("delivery")
    if not runs:
        return Text("No pipeline run is recorded yet.")
    rows = [
        [
            when(r.get("started_at")),
            _duration(r),
            r.get("status") or "-",
            r.get("outcome") or "-",
            r.get("reason") or "",
        ]
        for r in runs
    ]
    runs_table = table(["Started", "Took", "Status", "Outcome", "Reason"], rows, "lr")
    if found is None:
        return runs_table
    return Group(runs_table, Text(""), delivery(found))


def capture_importer(result: Mapping[str, Any]) -> RenderableType:
    return Text("The capture importer stopped.")


def db_upgrade(result: Mapping[str, Any]) -> RenderableType:
    return fields(
        [
            ("Record store", result["database_url"]),
            ("Revision before", result.get("before") or "none"),
            ("Revision now", result.get("after") or "none"),
            ("Latest", result.get("head") or "none"),
        ]
    )


def db_current(result: Mapping[str, Any]) -> RenderableType:
    return fields(
        [
            ("Record store", result["database_url"]),
            ("Revision", result.get("revision") or "none"),
            ("Latest", result.get("head") or "none"),
            ("Up to date", yes_no(result.get("up_to_date"))),
        ]
    )


def schedule(result: Mapping[str, Any]) -> RenderableType:
    outcomes = ", ".join(f"{name} {count}" for name, count in result["outcomes"].items())
    return fields(
        [
            ("Runs", num(result["runs"])),
            ("Outcomes", outcomes or "-"),
            ("Stopped by", result.get("stopped_by") or "-"),
        ]
    )
