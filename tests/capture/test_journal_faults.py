"""Capture journal faults, in one process: a poison line, a torn write, a full disk, a
journal deleted or replaced while in use, a line the store refuses. Each time
/prediction answers 200, every readable capture is stored exactly once, the unreadable
bytes are quarantined (a row, the bytes, a metric, a log line) and capture goes on
without a restart."""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import zlib
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DataError, OperationalError

from monitoring import capture
from monitoring.capture import importer, journal, ledger, writer
from monitoring.config import Settings
from monitoring.storage.schema import capture_journals, capture_quarantine, captured_predictions
from monitoring.storage.store import Store
from tests.capture.test_journal import ROWS, stored, wait_for
from tests.helpers import metric_value

REQUEST = ["r", "2026-12-01T00:00:00+00:00", "v", ["x", "y"], [[1.0, 2.0]], [1], [0.75]]


@pytest.fixture
def api(deployed: dict[str, Any], client: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(importer, "IMPORT_EVERY", 0.02)
    return client


def quarantined(store: Store) -> list[dict[str, Any]]:
    query = select(capture_quarantine).order_by(capture_quarantine.c.id)
    with store.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def count_rows(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(captured_predictions)).scalar())


COUNTED = [
    *(("monitoring_capture_quarantined_total", kind) for kind in journal.BAD_KINDS),
    *(("monitoring_capture_dropped_total", reason) for reason in writer.DROP_REASONS),
]


def counters(api: Any) -> dict[tuple[str, str], float]:
    """The capture fault counters now (they count across the tests of this process)."""
    text = api.get("/metrics").get_data(as_text=True)
    return {(name, r): metric_value(text, name, reason=r) for name, r in COUNTED}


def counted(api: Any, before: dict[tuple[str, str], float]) -> dict[str, float]:
    """What the fault counters counted since ``before``: ``{"<name>{<reason>}": n}``."""
    now = counters(api)
    return {f"{k[0]}{{{k[1]}}}": now[k] - before[k] for k in now if now[k] != before[k]}


def predict(api: Any, rid: str, k: int = 1) -> dict[str, Any]:
    response = api.post("/prediction", json={"data": ROWS * k}, headers={"X-Request-ID": rid})
    assert response.status_code == 200, response.get_data(as_text=True)
    return dict(response.get_json())


def no_import_running(the_writer: writer.CaptureWriter) -> None:
    """Wait for an import cycle that started before ``cycle`` was patched: it holds the
    importer's lock (``flock``) until it ends, and could import lines written meanwhile."""
    fd = os.open(the_writer.folders[0] / ".importer-lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def assert_stored_once(store: Store, bodies: list[dict[str, Any]]) -> None:
    """Each body's rows are stored, with its row ids when it had some, and nothing else."""
    total = 0
    for body in bodies:
        rows = stored(store, body["request_id"])
        assert [r[1] for r in rows] == list(range(len(body["predictions"]))), body["request_id"]
        if body["row_ids"] is not None:
            assert [r[2] for r in rows] == body["row_ids"]
        total += len(rows)
    assert count_rows(store) == total


# -- framing ---------------------------------------------------------------------------
def test_a_line_is_framed_with_its_length_and_crc32() -> None:
    line = journal.encode_line(7, REQUEST)
    payload = json.dumps([7, *REQUEST], separators=(",", ":")).encode()
    assert line == b"@%d %08x " % (len(payload), zlib.crc32(payload)) + payload + b"\n"
    assert journal.parse_line(line) == (
        7,
        [("r", 0, "2026-12-01T00:00:00+00:00", "v", '{"x":1.0,"y":2.0}', 1, 0.75)],
    )
    legacy = json.dumps([7, *REQUEST]).encode() + b"\n"  # the bare JSON of earlier versions
    assert journal.parse_line(legacy) == journal.parse_line(line)
    assert journal.parse_line(b"\n") is None  # a writer's fresh start after a failed write


def _framed(payload: bytes) -> bytes:
    return b"@%d %08x %s\n" % (len(payload), zlib.crc32(payload), payload)


GOOD = journal.encode_line(7, REQUEST)


def _shape(record: list[Any]) -> bytes:
    return _framed(json.dumps(record).encode())


@pytest.mark.parametrize(
    ("line", "kind", "detail"),
    [
        (b"garbage\n", "not_json", "the payload is not JSON"),
        (GOOD[:40] + b"\n", "torn", "the frame says"),
        (GOOD[:-1], "torn", "the line has no end"),
        (GOOD[:5], "torn", "the line has no end"),
        (b"@12\n", "torn", "the frame header is cut or damaged"),
        (b"@x1 00000000 a\n", "torn", "the frame header is cut or damaged"),
        (b"@1 zzzzzzzz a\n", "torn", "the frame header is cut or damaged"),
        (GOOD.replace(b'"r"', b'"s"'), "torn", "does not match its CRC-32"),
        (GOOD[:30] + GOOD, "torn", "the frame says"),  # a torn line run into the next
        (_framed(b"[1,2"), "not_json", "the payload is not JSON"),
        (_framed(b"\xff\xfe"), "not_json", "the payload is not JSON"),
        (_framed(b"[" * 100_000), "not_json", "the payload is not JSON"),
        (_framed(b'{"a":1}'), "bad_shape", "not an array of 8 values"),
        (_shape([1, *REQUEST, "extra"]), "bad_shape", "not an array of 8 values"),
        (_shape([1, "", *REQUEST[1:]]), "bad_shape", "the request id"),
        (_shape([1, "r" * 129, *REQUEST[1:]]), "bad_shape", "the request id"),
        (_shape([1, "r", 5, *REQUEST[2:]]), "bad_shape", "the capture time"),
        (_shape([1, "r", REQUEST[1], "v" * 65, *REQUEST[3:]]), "bad_shape", "model version"),
        (_shape([0, *REQUEST]), "bad_shape", "first row id"),
        (_shape([2**63 - 1, *REQUEST]), "bad_shape", "first row id"),
        (_shape([True, *REQUEST]), "bad_shape", "first row id"),
        (_shape([1, *REQUEST[:5], [1, 0], [0.5]]), "bad_shape", "differ in length"),
        (_shape([1, *REQUEST[:5], ["1"], [0.5]]), "bad_shape", "a prediction"),
        (_shape([1, *REQUEST[:5], [2**63], [0.5]]), "bad_shape", "a prediction"),
        (_framed(GOOD.split(b" ", 2)[2][:-1].replace(b"0.75", b"NaN")), "bad_shape", "prob"),
        (_shape([1, *REQUEST[:3], ["x", 1], *REQUEST[4:]]), "bad_shape", "the columns"),
        (_shape([1, *REQUEST[:4], [[1.0]], *REQUEST[5:]]), "bad_shape", "one value per column"),
        (_shape([1, *REQUEST[:4], [[1.0, "a"]], *REQUEST[5:]]), "bad_shape", "not a finite"),
        (_shape([1, *REQUEST[:4], [[1.0, None]], *REQUEST[5:]]), "bad_shape", "not a finite"),
        (_shape([1, *REQUEST[:4], [[1.0, 10**400]], *REQUEST[5:]]), "bad_shape", "not a finite"),
        (_shape([1, *REQUEST[:4], [[1.0, True]], *REQUEST[5:]]), "bad_shape", "not a finite"),
        (_shape([1, *REQUEST[:3], None, [{"x": 1}], *REQUEST[5:]]), "bad_shape", "JSON object"),
    ],
    ids=[
        "garbage",
        "cut-frame",
        "no-line-end",
        "cut-header",
        "header-only",
        "bad-length-digits",
        "bad-crc-hex",
        "crc-mismatch",
        "torn-run-into-next",
        "payload-not-json",
        "payload-not-utf8",
        "payload-nested-100k",
        "object-not-array",
        "nine-values",
        "empty-request-id",
        "long-request-id",
        "time-not-string",
        "long-model-version",
        "row-id-zero",
        "row-id-past-int64",
        "row-id-bool",
        "lengths-differ",
        "prediction-string",
        "prediction-past-int64",
        "probability-nan",
        "column-not-string",
        "row-too-short",
        "input-string",
        "input-null",
        "input-huge-int",
        "input-bool",
        "input-row-not-text",
    ],
)
def test_a_line_that_holds_no_capture_is_told_apart(line: bytes, kind: str, detail: str) -> None:
    with pytest.raises(journal.BadLine) as caught:
        journal.parse_line(line)
    assert caught.value.kind == kind
    assert detail in caught.value.detail


# -- quarantine -------------------------------------------------------------------------
def test_a_poison_line_is_quarantined_and_the_imports_go_on(
    api: Any, settings: Settings, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    start = counters(api)
    before = [predict(api, f"before-{i}") for i in range(3)]
    the_writer = writer.writer_for(store, settings)
    poison = b"garbage \x00\xff" + b"x" * 300 + b"\n"
    with the_writer.mutex:  # as another program appending to it would
        offset = os.fstat(the_writer.fd).st_size
        with open(the_writer.path, "ab") as handle:
            handle.write(poison)
    with caplog.at_level(logging.WARNING, logger="monitoring.capture"):
        after = [predict(api, f"after-{i}", k=i + 1) for i in range(3)]
        # The writer's background thread imports past the line (nothing here imports).
        wait_for(lambda: len(stored(store, *(b["request_id"] for b in after))) == 12, "stuck")
    assert_stored_once(store, before + after)
    [row] = quarantined(store)
    assert row["journal"] == the_writer.path.name
    assert (row["offset"], row["length"]) == (offset, len(poison))
    assert row["reason"].startswith("not_json: the payload is not JSON")
    assert row["excerpt"] == "garbage \\x00\\xff" + "x" * 110
    bad = importer.quarantine_path(the_writer.path)
    assert bad.parent == journal.journal_folder(settings) / "quarantine"
    header = f"# offset {offset} length {len(poison)} kept {len(poison)} not_json\n".encode()
    assert bad.read_bytes() == header + poison + b"\n"
    assert counted(api, start) == {"monitoring_capture_quarantined_total{not_json}": 1}
    assert f"capture journal {the_writer.path.name}: the line at byte {offset}" in caplog.text
    again = predict(api, "again")
    assert [r["id"] for r in capture.captured(store, settings, request_id=again["request_id"])] == (
        again["row_ids"]
    )
    assert len(quarantined(store)) == 1  # quarantined once, never read again


def test_feedback_imports_past_a_poison_line(
    api: Any, settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/feedback imports what is pending before it looks ids up: a poison line on its way
    is quarantined, not a 500."""
    monkeypatch.setattr(importer.Importer, "cycle", lambda self, block: False)  # no thread
    the_writer = writer.writer_for(store, settings)
    body = predict(api, "labelled", k=2)
    with the_writer.mutex, open(the_writer.path, "ab") as handle:
        handle.write(b"\x00" * 64 + b"\n")
    later = predict(api, "later")
    labels = {"request_id": body["request_id"], "labels": [1, 0, 1, 1]}
    response = api.post("/feedback", json=labels)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["labelled_rows"] == 4
    assert_stored_once(store, [body, later])
    assert [r["reason"].split(":")[0] for r in quarantined(store)] == ["not_json"]


def test_a_finished_journal_with_a_cut_last_line_and_old_lines_is_imported_and_removed(
    settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dead process's journal: lines of an earlier version (bare JSON), framed lines,
    garbage between them, and a last line cut by the crash."""
    monkeypatch.setattr(importer, "KEEP_LINE", 10)  # a quarantined line keeps 10 bytes
    folder = journal.journal_folder(settings)
    folder.mkdir(parents=True)
    legacy = json.dumps([None, "old", *REQUEST[1:]]).encode() + b"\n"
    framed = journal.encode_line(None, ["new", *REQUEST[1:]])
    garbage = b"}{ not a capture\n"
    cut = journal.encode_line(None, ["cut", *REQUEST[1:]])[:50]
    path = folder / "host_1_000000000001.jsonl"
    path.write_bytes(legacy + garbage + framed + b"\n" + cut)
    capture.import_journals(store, settings)  # unfinished? no writer holds it: finished
    the_importer = importer.Importer(store, journal.journal_folders(settings))
    try:
        assert the_importer.cycle(block=False)
    finally:
        the_importer.close()
    assert [r[0] for r in stored(store, "old", "new", "cut")] == ["new", "old"]
    assert not path.exists()  # imported whole, then removed with its offset
    with store.engine.connect() as conn:
        assert conn.execute(select(capture_journals)).all() == []
    rows = quarantined(store)
    assert [(r["offset"], r["length"], r["reason"].split(":")[0]) for r in rows] == [
        (len(legacy), len(garbage), "not_json"),
        (len(legacy + garbage + framed + b"\n"), 50, "torn"),
    ]
    assert rows[1]["reason"] == (
        "torn: the line has no end (its writer stopped in the middle) (bytes kept: 10 of 50)"
    )
    assert importer.quarantine_path(path).read_bytes() == (
        f"# offset {len(legacy)} length {len(garbage)} kept 10 not_json\n".encode()
        + garbage[:10]
        + b"\n"
        + f"# offset {rows[1]['offset']} length 50 kept 10 torn\n".encode()
        + cut[:10]
        + b"\n"
    )


def test_a_line_the_store_refuses_is_quarantined_alone(
    settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = journal.journal_folder(settings)
    folder.mkdir(parents=True)
    lines = [journal.encode_line(None, [f"r{i}", *REQUEST[1:]]) for i in range(5)]
    (folder / "host_1_000000000002.jsonl").write_bytes(b"".join(lines))
    insert_rows = ledger._insert_rows

    def refuse_r3(conn: Any, rows: list[tuple[Any, ...]]) -> None:
        if any(row[1] == "r3" for row in rows):
            raise DataError("INSERT", {}, Exception("value out of range"))
        insert_rows(conn, rows)

    monkeypatch.setattr(ledger, "_insert_rows", refuse_r3)
    capture.import_journals(store, settings)
    assert [r[0] for r in stored(store, *(f"r{i}" for i in range(5)))] == ["r0", "r1", "r2", "r4"]
    [row] = quarantined(store)
    assert (row["offset"], row["length"]) == (sum(map(len, lines[:3])), len(lines[3]))
    assert row["reason"] == "rejected: the store refused it: value out of range"


def test_a_row_id_past_32_bits_is_stored_on_sqlite_and_refused_by_postgresql(
    settings: Settings, store: Store
) -> None:
    """What the store cannot take is found by the store: SQLite's ids are 64-bit,
    PostgreSQL's ``integer`` refuses it and only that line is quarantined."""
    folder = journal.journal_folder(settings)
    folder.mkdir(parents=True)
    big = journal.encode_line(2**40, ["big", *REQUEST[1:]])
    small = journal.encode_line(None, ["small", *REQUEST[1:]])
    after = journal.encode_line(None, ["after", *REQUEST[1:]])
    (folder / "host_1_000000000004.jsonl").write_bytes(small + big + after)
    capture.import_journals(store, settings)
    if ledger.is_sqlite(store):
        assert stored(store, "big") == [("big", 0, 2**40)]
        assert quarantined(store) == []
    else:
        assert stored(store, "big") == []
        [row] = quarantined(store)
        assert (row["offset"], row["length"]) == (len(small), len(big))
        assert row["reason"].startswith("rejected: the store refused it: ")
        assert "out of range" in row["reason"]
    assert [r[0] for r in stored(store, "small", "after")] == ["after", "small"]


def test_a_store_that_cannot_be_reached_quarantines_nothing(
    settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unreachable store is not a bad line: the line waits, nothing is quarantined, and
    the quarantine file is cut back to what it held."""
    folder = journal.journal_folder(settings)
    folder.mkdir(parents=True)
    path = folder / "host_1_000000000003.jsonl"
    path.write_bytes(b"garbage\n" + journal.encode_line(None, REQUEST))
    import_lines = ledger.import_lines

    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("UPDATE", {}, Exception("connection refused"))

    monkeypatch.setattr(ledger, "import_lines", down)
    with pytest.raises(Exception, match="connection refused"):
        capture.import_journals(store, settings)
    assert importer.quarantine_path(path).read_bytes() == b""
    monkeypatch.setattr(ledger, "import_lines", import_lines)
    capture.import_journals(store, settings)
    assert [r[0] for r in stored(store, "r")] == ["r"]
    assert len(quarantined(store)) == 1
    assert importer.quarantine_path(path).read_bytes().startswith(b"# offset 0 length 8 kept 8")


# -- a full disk, a torn write ------------------------------------------------------------
def test_a_full_disk_fails_only_the_captures_and_a_torn_write_never_spoils_the_next_lines(
    api: Any,
    settings: Settings,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The first write of the spell stops half-way (ENOSPC after some bytes), the others
    write nothing; then the disk has room again."""
    start = counters(api)
    before = [predict(api, f"before-{i}") for i in range(2)]
    the_writer = writer.writer_for(store, settings)
    real_write = os.write
    spell = {"on": True, "partial": 0}

    def full_disk(fd: int, data: Any) -> int:
        if fd != the_writer.fd or not spell["on"]:
            return real_write(fd, data)
        if not spell["partial"]:
            spell["partial"] = real_write(fd, bytes(data[: len(data) // 2]))
            return spell["partial"]  # a short write: the next call fails
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer.os, "write", full_disk)
    offset = os.fstat(the_writer.fd).st_size
    with caplog.at_level(logging.ERROR, logger="monitoring.capture"):
        during = [predict(api, f"during-{i}") for i in range(4)]
    assert [b["row_ids"] for b in during] == [None] * 4  # answered, not captured
    assert [b["predictions"] for b in during] == [before[0]["predictions"]] * 4
    assert counted(api, start) == {"monitoring_capture_dropped_total{disk_full}": 4}
    assert f"capture of request {during[0]['request_id']} dropped (disk_full)" in caplog.text
    spell["on"] = False
    after = [predict(api, f"after-{i}", k=2) for i in range(3)]
    wait_for(lambda: len(stored(store, *(b["request_id"] for b in after))) == 12, "stuck")
    assert_stored_once(store, before + after)
    assert stored(store, *(b["request_id"] for b in during)) == []
    # The torn half is alone on its line, quarantined; the next line is whole.
    text = the_writer.path.read_bytes()[offset:]
    assert text[spell["partial"] : spell["partial"] + 2] == b"\n@"  # a small batch: JSON
    [row] = quarantined(store)
    assert (row["offset"], row["length"]) == (offset, spell["partial"] + 1)
    assert row["reason"].startswith("torn: the frame says")
    assert counted(api, start) == {
        "monitoring_capture_dropped_total{disk_full}": 4,
        "monitoring_capture_quarantined_total{torn}": 1,
    }


def test_a_capture_writer_that_cannot_write_its_journal_counts_journal_not_disk_full(
    api: Any, settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    predict(api, "first")
    start = counters(api)
    the_writer = writer.writer_for(store, settings)
    real_write = os.write

    def io_error(fd: int, data: Any) -> int:
        if fd == the_writer.fd:
            raise OSError(errno.EIO, "Input/output error")
        return real_write(fd, data)

    monkeypatch.setattr(writer.os, "write", io_error)
    assert predict(api, "lost")["row_ids"] is None
    monkeypatch.setattr(writer.os, "write", real_write)
    assert counted(api, start) == {"monitoring_capture_dropped_total{journal}": 1}
    assert not the_writer.torn  # nothing was written: no fresh line needed
    later = predict(api, "later")
    assert [r["id"] for r in capture.captured(store, settings, request_id=later["request_id"])] == (
        later["row_ids"]
    )


# -- a journal deleted or replaced ---------------------------------------------------------
@pytest.mark.parametrize("how", ["deleted", "replaced", "folder deleted"])
def test_rows_of_a_journal_deleted_while_in_use_are_recovered_once(
    how: str,
    api: Any,
    settings: Settings,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Rows imported before, rows written before the deletion and not imported, rows
    written to the deleted file before the writer noticed: each stored once."""
    start = counters(api)
    first = [predict(api, f"first-{i}") for i in range(2)]
    ids = [b["request_id"] for b in first]  # the server's ids (X-Request-ID correlates only)
    wait_for(lambda: len(stored(store, *ids)) == 4, "not imported")
    cycle, check = importer.Importer.cycle, writer.CaptureWriter._check_journal
    monkeypatch.setattr(importer.Importer, "cycle", lambda self, block: False)  # no imports
    monkeypatch.setattr(writer.CaptureWriter, "_check_journal", lambda self, now=False: None)
    the_writer = writer.writer_for(store, settings)
    no_import_running(the_writer)
    waiting = [predict(api, f"waiting-{i}", k=i + 1) for i in range(3)]
    old = the_writer.path
    if how == "deleted":
        old.unlink()
    elif how == "replaced":
        old.unlink()
        old.write_bytes(b"")  # another file by the same name
    else:
        journal.journal_folder(settings).rename(old.parent.with_name("moved-away"))
    unnoticed = [predict(api, f"unnoticed-{i}") for i in range(2)]  # into the deleted file
    monkeypatch.setattr(writer.CaptureWriter, "_check_journal", check)
    with caplog.at_level(logging.INFO, logger="monitoring.capture"):
        with the_writer.mutex:
            the_writer._check_journal(now=True)
        assert the_writer.path != old and the_writer.path.exists()
        assert [orphan[1:] for orphan in the_writer.orphans] == [(old, 7)]
        the_writer.wake.set()
        wait_for(lambda: not the_writer.orphans, "not recovered")
        monkeypatch.setattr(importer.Importer, "cycle", cycle)
        later = [predict(api, f"later-{i}") for i in range(2)]
        everything = first + waiting + unnoticed + later
        rids = [b["request_id"] for b in everything]
        wait_for(lambda: len(stored(store, *rids)) == 4 + 12 + 4 + 4, "not imported")
        wait_for(lambda: not old.exists(), "the file by the old name was not imported")
    assert_stored_once(store, everything)
    assert f"capture journal {old.name} was {how.split()[-1]} while in use" in caplog.text
    assert f"capture journal {old.name}: 5 lines not imported yet recovered" in caplog.text
    assert counted(api, start) == {}  # nothing lost, nothing quarantined
    assert quarantined(store) == []
    with store.engine.connect() as conn:
        assert old.name not in [r[0] for r in conn.execute(select(capture_journals.c.name))]


def test_rows_of_a_deleted_journal_that_cannot_be_recovered_are_counted(
    api: Any,
    settings: Settings,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    start = counters(api)
    monkeypatch.setattr(importer.Importer, "cycle", lambda self, block: False)
    predict(api, "a")
    predict(api, "b")
    the_writer = writer.writer_for(store, settings)
    old = the_writer.path

    def cannot(staged: Path) -> Path:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(writer, "publish_journal", cannot)
    old.unlink()
    with caplog.at_level(logging.ERROR, logger="monitoring.capture"):
        with the_writer.mutex:
            the_writer._check_journal(now=True)
        the_writer._salvage()
    assert the_writer.orphans == []
    assert counted(api, start) == {"monitoring_capture_dropped_total{journal_deleted}": 2}
    assert f"capture journal {old.name} was deleted and up to 2 captured requests" in caplog.text
    assert list(old.parent.glob(".*.new")) == []  # the staged copy is not left behind
