"""Statistics of recorded ingestion and training durations, and timed scratch runs of both."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from monitoring.config import Settings
from monitoring.data.ingestion import ingest
from monitoring.model.training import train
from monitoring.storage.store import Store

TIMED_STEPS = ("ingestion", "training")


def describe_timings(samples: list[float]) -> dict[str, Any]:
    """Mean, std, min and max of a list of durations in seconds."""
    if not samples:
        return {"runs": 0, "mean": None, "std": None, "min": None, "max": None}
    return {
        "runs": len(samples),
        "mean": statistics.fmean(samples),
        "std": statistics.stdev(samples) if len(samples) > 1 else 0.0,
        "min": min(samples),
        "max": max(samples),
    }


def recorded_timings(store: Store, *, last: int = 20) -> dict[str, Any]:
    """Statistics over the latest recorded durations of each pipeline step."""
    out: dict[str, Any] = {}
    for step in TIMED_STEPS:
        rows = store.timings(step, limit=last)
        out[step] = {
            **describe_timings([r["seconds"] for r in rows]),
            "last_measured_at": rows[0]["measured_at"] if rows else None,
            "rows": rows[0]["rows"] if rows else None,
        }
    return out


def time_steps(settings: Settings, *, runs: int, progress: Any = None) -> dict[str, Any]:
    """Time ``runs`` ingestions and trainings; return each step's statistics and ``samples``.

    Inputs are read from the configured folders; every output goes to a temporary
    folder and a throw-away database.
    """
    samples: dict[str, list[float]] = {step: [] for step in TIMED_STEPS}
    with tempfile.TemporaryDirectory(prefix="monitoring-timing-") as tmp:
        scratch = settings.with_overrides(
            output_folder_path=str(Path(tmp) / "ingested"),
            output_model_path=str(Path(tmp) / "model"),
            prod_deployment_path=str(Path(tmp) / "prod"),
            database_url=f"sqlite:///{Path(tmp) / 'timing.db'}",
        )
        store = Store(scratch.database_url)
        for i in range(runs):
            samples["ingestion"].append(ingest(scratch, store=store).seconds)
            train(scratch, store=store)
            samples["training"].append(store.timings("training", limit=1)[0]["seconds"])
            if progress:
                progress(i + 1, runs)
    return {step: {**describe_timings(s), "samples": s} for step, s in samples.items()}
