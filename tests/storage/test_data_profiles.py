"""Data profiles in the record store: the latest one, its reference bytes, and pruning."""

from __future__ import annotations

from monitoring.storage.store import KEEP_PROFILE_REFERENCES, Store


def test_latest_profile_and_its_reference(store: Store) -> None:
    assert (store.data_profile(), store.latest_data_profile_id()) == (None, None)
    first = store.add_data_profile({"rows": 1}, reference=b"one", data_sha256="a" * 64)
    second = store.add_data_profile({"rows": 2}, reference=b"\x00two", data_sha256=None)
    assert second > first and store.latest_data_profile_id() == second
    latest = store.data_profile()
    assert latest is not None
    assert (latest["id"], latest["profile"], latest["data_sha256"]) == (second, {"rows": 2}, None)
    assert latest["has_reference"] is True and "reference" not in latest
    older = store.data_profile(first)
    assert older is not None and (older["profile"], older["data_sha256"]) == ({"rows": 1}, "a" * 64)
    assert store.data_profile(second + 100) is None
    assert store.data_profile_reference(second) == b"\x00two"
    assert store.data_profile_reference(first) == b"one"
    assert store.data_profile_reference(second + 100) is None


def test_only_the_latest_profiles_keep_their_reference_bytes(store: Store) -> None:
    assert KEEP_PROFILE_REFERENCES == 5
    ids = [
        store.add_data_profile({"rows": i}, reference=bytes([i]) * 1000, data_sha256=None)
        for i in range(8)
    ]
    kept = [store.data_profile_reference(i) for i in ids]
    assert kept == [None, None, None] + [bytes([i]) * 1000 for i in range(3, 8)]
    assert [store.data_profile(i)["profile"] for i in ids] == [{"rows": i} for i in range(8)]
    assert [store.data_profile(i)["has_reference"] for i in ids] == [False] * 3 + [True] * 5
    store.add_data_profile({"rows": 8}, reference=b"x", data_sha256=None, keep_references=1)
    assert [store.data_profile_reference(i) for i in ids] == [None] * 8


def test_a_profile_write_changes_the_records_stamp(store: Store) -> None:
    before = store.change_key(records_only=True)
    store.add_data_profile({"rows": 0}, reference=None, data_sha256=None)
    if store.file is not None:  # SQLite: readers key their caches on the stamp
        assert store.change_key(records_only=True) != before
    assert store.data_profile()["has_reference"] is False
