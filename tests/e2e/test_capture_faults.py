"""Capture faults under a real gunicorn (2 workers and the importer process), with
traffic flowing: a poison journal line, a torn write followed by new writes, a full disk
(ENOSPC injected into the workers' journal writes), journals deleted while in use, the
importer SIGKILLed. Each time /prediction answers 2xx throughout, every capture that was
journalled whole is stored exactly once, and capture recovers without a restart."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from monitoring.capture import journal
from monitoring.config import Settings, load_settings
from monitoring.storage.schema import capture_quarantine, captured_predictions
from monitoring.storage.store import Store
from tests.e2e.test_processes import _importer_processes
from tests.helpers import metric_value, running_gunicorn

pytestmark = pytest.mark.e2e

ROW = {"lastmonth_activity": 1, "lastyear_activity": 2, "number_of_employees": 3}


class Traffic:
    """Clients posting /prediction in threads until stopped; every answer is kept."""

    def __init__(self, base: str, clients: int = 2) -> None:
        self.base, self.stop = base, threading.Event()
        self.answers: list[tuple[int, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(clients)]

    def _run(self, client: int) -> None:
        session, n = requests.Session(), 0
        while not self.stop.is_set():
            n += 1
            body = {"data": [ROW] * (1 + n % 3)}
            rid = f"c{client}-{n}"
            response = session.post(
                self.base + "/prediction", json=body, headers={"X-Request-ID": rid}, timeout=30
            )
            try:
                answer = response.json()
            except ValueError:  # not the service's JSON: kept to show in the failure
                answer = {"request_id": rid, "text": response.text[:300]}
            with self.lock:
                self.answers.append((response.status_code, answer))
            time.sleep(0.005)

    def __enter__(self) -> Traffic:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def count(self) -> int:
        with self.lock:
            return len(self.answers)

    def wait_for(self, more: int) -> None:
        target = self.count() + more
        wait_until(lambda: self.count() >= target, f"{more} more answers")


def wait_until(condition: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def stored_rows(store: Store) -> dict[str, list[tuple[int, int]]]:
    """(row index, id) of every stored row, by request id."""
    table = captured_predictions
    query = select(table.c.request_id, table.c.row_index, table.c.id).order_by(table.c.id)
    out: dict[str, list[tuple[int, int]]] = {}
    with store.engine.connect() as conn:
        for rid, index, row_id in conn.execute(query):
            out.setdefault(rid, []).append((index, row_id))
    return out


def assert_each_capture_stored_once(
    store: Store, answers: list[tuple[int, dict[str, Any]]], *, lost: set[str] = frozenset()
) -> None:
    """Every answer 200; each capture (but ``lost``) stored once, with its row ids."""
    assert [a for a in answers if a[0] != 200] == []
    expected = {
        b["request_id"]: (len(b["predictions"]), b["row_ids"])
        for _, b in answers
        if b["request_id"] not in lost
    }
    total = sum(n for n, _ in expected.values())

    def all_in() -> bool:
        with store.engine.connect() as conn:
            count = conn.execute(select(func.count()).select_from(captured_predictions)).scalar()
        return int(count or 0) >= total

    wait_until(all_in, f"{total} rows imported")
    rows = stored_rows(store)
    assert set(rows) == set(expected)
    for rid, (n, row_ids) in expected.items():
        assert [index for index, _ in rows[rid]] == list(range(n)), rid
        if row_ids is not None:
            assert [row_id for _, row_id in rows[rid]] == row_ids, rid


def quarantine_rows(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        query = select(capture_quarantine).order_by(capture_quarantine.c.id)
        return [dict(r._mapping) for r in conn.execute(query)]


def metrics(base: str) -> str:
    return requests.get(base + "/metrics", timeout=30).text


@pytest.fixture
def served(settings: Settings, deployed: dict[str, Any]) -> Iterator[tuple[str, Store]]:
    with running_gunicorn(settings) as (base, _):
        yield base, Store(settings.database_url)


def live_journals(settings: Settings) -> list[Path]:
    return sorted(journal.journal_folder(settings).glob("*.jsonl"))


def test_the_importer_killed_with_sigkill_is_started_again(
    settings: Settings, served: tuple[str, Store]
) -> None:
    base, store = served
    [first] = _importer_processes(settings.config_path)
    with Traffic(base) as traffic:
        traffic.wait_for(20)
        os.kill(int(first.name), signal.SIGKILL)
        wait_until(
            lambda: (
                [p.name for p in _importer_processes(settings.config_path)]
                not in ([], [first.name])
            ),
            "a new importer",
        )
        traffic.wait_for(20)
        [second] = _importer_processes(settings.config_path)
        os.kill(int(second.name), signal.SIGKILL)  # and again: restarted after a longer wait
        wait_until(
            lambda: (
                [p.name for p in _importer_processes(settings.config_path)]
                not in ([], [second.name])
            ),
            "a third importer",
        )
        traffic.wait_for(20)
    assert_each_capture_stored_once(store, traffic.answers)
    [third] = _importer_processes(settings.config_path)
    assert third.name not in (first.name, second.name)
    # The new importer holds the importer lock: the workers leave the importing to it.
    lock = journal.journal_folder(settings) / ".importer-lock"
    wait_until(lambda: flock_holders(lock) == {int(third.name)}, "the importer's lock")


def flock_holders(path: Path) -> set[int]:
    """The processes holding an ``flock`` on ``path`` (from /proc/locks)."""
    stat = path.stat()
    device = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    holders = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "FLOCK" in fields and device in fields and "->" not in fields:
            holders.add(int(fields[fields.index(device) - 1]))
    return holders


def test_a_poison_line_is_quarantined_and_captures_go_on(
    settings: Settings, served: tuple[str, Store]
) -> None:
    base, store = served
    [importer_process] = _importer_processes(settings.config_path)
    with Traffic(base) as traffic:
        traffic.wait_for(20)
        poisoned = live_journals(settings)
        assert poisoned  # the workers' journals
        for path in poisoned:
            with open(path, "ab") as handle:  # an append that interleaves with the writer's
                handle.write(b"garbage\n")
        dead = journal.journal_folder(settings) / "host_1_0000000000aa.jsonl"
        dead.write_bytes(b'["not a capture"]\n' + b"\xff" * 100 + b"\n")
        traffic.wait_for(40)
    assert_each_capture_stored_once(store, traffic.answers)
    wait_until(lambda: not dead.exists(), "the poisoned dead journal imported")
    rows = quarantine_rows(store)
    by_journal = {(r["journal"], r["excerpt"]): r["reason"].split(":")[0] for r in rows}
    expected = {(p.name, "garbage\\n"): "not_json" for p in poisoned}
    expected[(dead.name, '["not a capture"]\\n')] = "bad_shape"
    expected[(dead.name, "\\xff" * 100 + "\\n")] = "not_json"
    assert by_journal == expected
    text = metrics(base)  # summed over the processes that imported
    assert metric_value(text, "monitoring_capture_quarantined_total", reason="not_json") == (
        len(poisoned) + 1
    )
    assert metric_value(text, "monitoring_capture_quarantined_total", reason="bad_shape") == 1
    assert _importer_processes(settings.config_path) == [importer_process]  # it never died


# A sitecustomize for the gunicorn processes: while the flag file exists, a write to a
# capture journal (*.jsonl) fails with ENOSPC, the first one in each process after
# writing half its bytes (reported in the flag folder).
FULL_DISK = textwrap.dedent(
    """
    import errno, os
    _flag = os.environ.get("TEST_FULL_DISK_FLAG")
    _write = os.write
    _torn = []

    def write(fd, data):
        if _flag and os.path.exists(_flag):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                target = ""
            if target.endswith(".jsonl"):
                if not _torn:
                    _torn.append(_write(fd, bytes(data[: len(data) // 2])))
                    with open(_flag + f".{os.getpid()}", "w") as report:
                        report.write(f"{os.path.basename(target)} {_torn[0]}")
                    return _torn[0]
                raise OSError(errno.ENOSPC, "No space left on device")
        return _write(fd, data)

    os.write = write
    """
)


def test_a_full_disk_tears_one_line_and_drops_only_the_captures_it_refused(
    settings: Settings, deployed: dict[str, Any], tmp_path: Path
) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(FULL_DISK)
    flag = tmp_path / "disk-full"
    path = os.pathsep.join(filter(None, [str(hooks), os.environ.get("PYTHONPATH")]))
    store = Store(settings.database_url)
    with running_gunicorn(settings, PYTHONPATH=path, TEST_FULL_DISK_FLAG=str(flag)) as (base, _):
        with Traffic(base) as traffic:
            traffic.wait_for(20)
            flag.touch()
            start = traffic.count()
            traffic.wait_for(30)
            flag.unlink()
            end = traffic.count()
            traffic.wait_for(30)
        answers = traffic.answers
        # Answers during the spell carry no row ids: those captures were refused (the two
        # requests in flight at each edge may fall either side).
        spell = answers[max(0, start - 2) : end + 2]
        lost = {b["request_id"] for _, b in spell if b["row_ids"] is None}
        assert len(lost) >= 26
        assert_each_capture_stored_once(store, answers, lost=lost)
        text = metrics(base)
        assert metric_value(text, "monitoring_capture_dropped_total", reason="disk_full") == len(
            lost
        )
        torn = {
            report.read_text().split()[0]: int(report.read_text().split()[1])
            for report in tmp_path.glob("disk-full.*")
        }
        assert 1 <= len(torn) <= 2  # one torn line per worker that wrote in the spell
        rows = quarantine_rows(store)
        assert {r["journal"]: r["length"] for r in rows} == {
            name: half + 1 for name, half in torn.items()
        }
        assert {r["reason"].split(":")[0] for r in rows} == {"torn"}
        assert metric_value(text, "monitoring_capture_quarantined_total", reason="torn") == len(
            torn
        )


def test_journals_deleted_while_serving_lose_nothing(
    settings: Settings, served: tuple[str, Store]
) -> None:
    base, store = served
    with Traffic(base) as traffic:
        for _ in range(5):
            traffic.wait_for(15)
            for path in live_journals(settings):  # those being written (an rm of a finished
                if not journal.finished(path):  # one not imported yet would lose its rows)
                    path.unlink(missing_ok=True)
        traffic.wait_for(15)
    assert_each_capture_stored_once(store, traffic.answers)
    text = metrics(base)
    assert metric_value(text, "monitoring_capture_dropped_total", reason="journal_deleted") == 0
    assert quarantine_rows(store) == []


def test_an_importer_that_stops_on_purpose_is_left_stopped_and_none_outlives_gunicorn(
    settings: Settings, deployed: dict[str, Any]
) -> None:
    """With capture off the importer ends at once, saying so: not started again. A
    served gunicorn leaves no importer behind when it stops."""
    with running_gunicorn(settings) as (base, _):
        assert len(_importer_processes(settings.config_path)) == 1
    wait_until(lambda: _importer_processes(settings.config_path) == [], "the importer to end")
    config = json.loads(settings.config_path.read_text())
    config["capture"]["enabled"] = False
    settings.config_path.write_text(json.dumps(config))
    with running_gunicorn(settings) as (base, _):
        wait_until(lambda: _importer_processes(settings.config_path) == [], "the importer's end")
        time.sleep(3.5)  # past the first restart waits (1 s, 2 s)
        assert _importer_processes(settings.config_path) == []
        response = requests.post(base + "/prediction", json={"data": [ROW]}, timeout=30)
        assert response.status_code == 200
        assert len(response.json()["predictions"]) == 1 and "row_ids" not in response.json()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KB tmpfs (needs the right to mount: root in a container that allows it)."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` to the last byte; the filler file."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for size in (1 << 16, 1 << 12, 1 << 8, 1):
            with contextlib.suppress(OSError):
                while handle.write(b"\0" * size) == size:
                    pass
    return filler


def test_a_real_full_disk_under_gunicorn(
    settings: Settings, deployed: dict[str, Any], small_disk: Path
) -> None:
    """The journals on a small tmpfs filled to the last byte while traffic flows, then
    freed: /prediction 200 throughout; each capture answered with row ids stored once;
    those refused (no row ids) counted; torn lines quarantined, nothing else."""
    config = json.loads(settings.config_path.read_text())
    config["capture"]["journal_path"] = str(small_disk)
    settings.config_path.write_text(json.dumps(config))
    settings = load_settings(settings.config_path, env={})
    store = Store(settings.database_url)
    with running_gunicorn(settings) as (base, _):
        with Traffic(base) as traffic:
            traffic.wait_for(20)
            filler = fill(small_disk)
            start = traffic.count()
            traffic.wait_for(60)
            filler.unlink()
            end = traffic.count()
            traffic.wait_for(30)
        answers = traffic.answers
        refused = {b["request_id"] for _, b in answers if b["row_ids"] is None}
        assert refused and refused <= {b["request_id"] for _, b in answers[start - 2 : end + 2]}
        assert_each_capture_stored_once(store, answers, lost=refused)
        text = metrics(base)
        assert metric_value(text, "monitoring_capture_dropped_total", reason="disk_full") == len(
            refused
        )
        assert {r["reason"].split(":")[0] for r in quarantine_rows(store)} <= {"torn"}
