"""Tests of :mod:`monitoring.diagnostics.dependencies` (no network: fetchers are fakes)."""

from __future__ import annotations

import io
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitoring.diagnostics import dependencies as depcheck
from monitoring.exceptions import ConfigError

# --------------------------------------------------------------------------------------
# Helpers and fixtures
# --------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_leftover_refresh() -> Iterator[None]:
    """Every test must leave no background refresh running."""
    yield
    assert depcheck.wait_for_refresh(timeout=10)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def fake_installed(monkeypatch: pytest.MonkeyPatch, versions: Mapping[str, str | None]) -> None:
    """Make :func:`depcheck.installed_version` answer from ``versions``."""

    def installed(name: str) -> str | None:
        return versions.get(depcheck.normalize_name(name))

    monkeypatch.setattr(depcheck, "installed_version", installed)


def table_fetcher(latest: Mapping[str, str | None]) -> Callable[[str], str | None]:
    def fetch(name: str) -> str | None:
        return latest.get(name)

    return fetch


class CountingFetcher:
    """Fetcher that records calls and can block until released."""

    def __init__(self, latest: dict[str, str], *, block: bool = False) -> None:
        self.latest = latest
        self.calls: list[str] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        if not block:
            self.release.set()

    def __call__(self, name: str) -> str | None:
        with self._lock:
            self.calls.append(name)
        self.release.wait(timeout=10)
        return self.latest.get(name)


def offline(name: str) -> str | None:
    raise urllib.error.URLError("network is unreachable")


# --------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------


PARSE_CASES = [
    pytest.param(
        "# comment only\n\n   \nflask==3.1.3  # trailing comment\n",
        [("flask", "==3.1.3")],
        id="comments-and-blanks",
    ),
    pytest.param("numpy\n", [("numpy", "")], id="no-specifier"),
    pytest.param(
        "requests[socks, security] >= 2.0 , < 3\n",
        [("requests", ">=2.0,<3")],
        id="extras-and-whitespace",
    ),
    pytest.param(
        'pywin32>=300; sys_platform == "win32"\nscipy ;python_version<"3.12"\n',
        [("pywin32", ">=300"), ("scipy", "")],
        id="markers",
    ),
    pytest.param(
        'pkg[extra]==1.0 ; python_version >= "3.8" and os_name != "nt"\n',
        [("pkg", "==1.0")],
        id="extras-and-markers",
    ),
    pytest.param("foo (>=1.0,<2)\n", [("foo", ">=1.0,<2")], id="parenthesised"),
    pytest.param(
        "a~=1.4.2\nb===1.0-weird\nc==2.*\nd!=1.5\n",
        [("a", "~=1.4.2"), ("b", "===1.0-weird"), ("c", "==2.*"), ("d", "!=1.5")],
        id="operators",
    ),
    pytest.param(
        "--index-url https://example.invalid/simple\n"
        "--extra-index-url=https://example.invalid/b\n"
        "-c constraints.txt\n-e .\n--pre\n-f ./wheels\nflask\n",
        [("flask", "")],
        id="option-lines-ignored",
    ),
    pytest.param(
        "flask==3.1.3 \\\n    --hash=sha256:aaaa \\\n    --hash=sha256:bbbb\nnumpy\n",
        [("flask", "==3.1.3"), ("numpy", "")],
        id="hashes-and-continuations",
    ),
    pytest.param(
        "pkg @ https://example.invalid/pkg-1.0.tar.gz#sha256=ab ; python_version>'3'\n",
        [("pkg", "")],
        id="named-url",
    ),
    pytest.param(
        "git+https://example.invalid/x/y.git\n./local/pkg\n/abs/pkg\n"
        "foo-1.0-py3-none-any.whl\nflask\n",
        [("flask", "")],
        id="direct-references-skipped",
    ),
    pytest.param(
        "numpy>=1\nNumPy<3\nnumpy>=1\n",
        [("numpy", ">=1,<3")],
        id="duplicates-merged-first-spelling-kept",
    ),
    pytest.param(
        "Scikit_Learn==1.0\nSQLAlchemy\n",
        [("Scikit_Learn", "==1.0"), ("SQLAlchemy", "")],
        id="original-spelling-kept",
    ),
    pytest.param("\ufeffflask==1\n", [("flask", "==1")], id="utf8-bom"),
    pytest.param("flask 3.1\nnumpy\n", [("numpy", "")], id="garbage-line-skipped"),
]


@pytest.mark.parametrize(("text", "expected"), PARSE_CASES)
def test_parse_requirements(tmp_path: Path, text: str, expected: list[tuple[str, str]]) -> None:
    path = write(tmp_path / "requirements.txt", text)
    parsed = depcheck.parse_requirements(path)
    assert [(r.name, r.specifier) for r in parsed] == expected
    assert all(r.source == path for r in parsed)


def test_parse_requirements_keys_are_pep503() -> None:
    requirement = depcheck.Requirement(name="Scikit_Learn", specifier="==1.0")
    assert requirement.key == "scikit-learn"


def test_parse_records_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path / "r.txt", "# header\n\nflask\\\n==1.0\nnumpy\n")
    parsed = depcheck.parse_requirements(path)
    assert [(r.name, r.specifier, r.line) for r in parsed] == [
        ("flask", "==1.0", 3),
        ("numpy", "", 5),
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Flask", "flask"),
        ("scikit_learn", "scikit-learn"),
        ("zope.interface", "zope-interface"),
        ("a-_.-b", "a-b"),
        ("SQLAlchemy", "sqlalchemy"),
    ],
)
def test_normalize_name(name: str, expected: str) -> None:
    assert depcheck.normalize_name(name) == expected


def test_includes_relative_to_file_and_cycles(tmp_path: Path) -> None:
    main = write(
        tmp_path / "requirements.txt",
        "flask\n-r sub/dev.txt\nnumpy\n-r requirements.txt\n",
    )
    write(
        tmp_path / "sub" / "dev.txt",
        "pytest==9.0\n--requirement=more.txt\n-r ../requirements.txt\n",
    )
    write(tmp_path / "sub" / "more.txt", "ruff\n-rdev.txt\n")
    parsed = depcheck.parse_requirements(main)
    assert [r.name for r in parsed] == ["flask", "pytest", "ruff", "numpy"]
    assert parsed[1].source == tmp_path / "sub" / "dev.txt"


def test_include_by_absolute_path(tmp_path: Path) -> None:
    other = write(tmp_path / "elsewhere" / "base.txt", "pandas==3.0\n")
    main = write(tmp_path / "req" / "requirements.txt", f"-r {other}\nflask\n")
    assert [r.name for r in depcheck.parse_requirements(main)] == ["pandas", "flask"]


def test_missing_file_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        depcheck.parse_requirements(tmp_path / "nope.txt")


def test_missing_include_raises_config_error(tmp_path: Path) -> None:
    path = write(tmp_path / "r.txt", "flask\n-r missing.txt\n")
    with pytest.raises(ConfigError, match="missing.txt"):
        depcheck.parse_requirements(path)


def test_pins_property() -> None:
    requirement = depcheck.Requirement(name="x", specifier=">=1,==1.2,===1.2,!=1.3")
    assert requirement.pins == (("==", "1.2"), ("===", "1.2"))


# --------------------------------------------------------------------------------------
# Versions
# --------------------------------------------------------------------------------------


COMPARE_CASES = [
    ("1.0", "1.0", 0),
    ("1.0", "1.0.0", 0),
    ("1.2", "1.10", -1),
    ("2.0", "1.99.99", 1),
    ("1!0.5", "2.0", 1),
    ("1.0a1", "1.0", -1),
    ("1.0a1", "1.0b1", -1),
    ("1.0b2", "1.0rc1", -1),
    ("1.0rc1", "1.0c1", 0),
    ("1.0-alpha.1", "1.0a1", 0),
    ("1.0.dev1", "1.0a1", -1),
    ("1.0.dev1", "1.0.dev2", -1),
    ("1.0a1.dev1", "1.0a1", -1),
    ("1.0", "1.0.post1", -1),
    ("1.0-1", "1.0.post1", 0),
    ("1.0.post1.dev1", "1.0.post1", -1),
    ("1.0.post1.dev1", "1.0", 1),
    ("1.0", "1.0+local", -1),
    ("1.0+abc", "1.0+5", -1),
    ("1.0+5", "1.0+10", -1),
    ("V1.0", "1.0", 0),
    ("1.0.POST", "1.0.post0", 0),
    ("2.0.0rc1", "1.9", 1),
]


@pytest.mark.parametrize(("left", "right", "expected"), COMPARE_CASES)
def test_compare_versions(left: str, right: str, expected: int) -> None:
    assert depcheck.compare_versions(left, right) == expected
    assert depcheck.compare_versions(right, left) == -expected


@pytest.mark.parametrize(("left", "right", "expected"), COMPARE_CASES)
def test_compare_versions_agrees_with_packaging(left: str, right: str, expected: int) -> None:
    version = pytest.importorskip("packaging.version")
    a, b = version.Version(left), version.Version(right)
    assert (a > b) - (a < b) == expected


def test_version_sort_order() -> None:
    ordered = [
        "0.9",
        "1.0.dev0",
        "1.0a1.dev0",
        "1.0a1",
        "1.0a2",
        "1.0b1",
        "1.0rc1",
        "1.0",
        "1.0+local",
        "1.0.post1.dev0",
        "1.0.post1",
        "1.1",
        "1!0.1",
    ]
    parsed = [depcheck.parse_version(v) for v in reversed(ordered)]
    assert all(v is not None for v in parsed)
    assert [str(v) for v in sorted(v for v in parsed if v is not None)] == ordered


@pytest.mark.parametrize("text", ["", "abc", "1.0-foo", "2013-spring", "1..0", "1.0+", "1.0.x"])
def test_invalid_versions(text: str) -> None:
    assert depcheck.parse_version(text) is None
    assert depcheck.compare_versions(text, "1.0") is None


def test_version_str_is_canonical() -> None:
    parsed = depcheck.parse_version("v1!2.0-ALPHA.3_post-4.DEV5+Ubuntu-1")
    assert str(parsed) == "1!2.0a3.post4.dev5+ubuntu.1"


# --------------------------------------------------------------------------------------
# Statuses
# --------------------------------------------------------------------------------------


STATUS_CASES = [
    # specifier, installed, latest, status
    pytest.param("==1.0", "1.0", "1.0", "up-to-date", id="pinned-current"),
    pytest.param("==1.0", "1.0", "2.0", "outdated", id="pinned-outdated"),
    pytest.param("", "1.0", "1.0.0", "up-to-date", id="equal-after-padding"),
    pytest.param("", "2.0rc1", "1.9", "up-to-date", id="ahead-of-index"),
    pytest.param("", "1.0", "1.0.post1", "outdated", id="post-release"),
    pytest.param("==1.0", "1.1", "2.0", "pin-mismatch", id="pin-mismatch"),
    pytest.param("==1.0", "1.1", None, "pin-mismatch", id="mismatch-beats-unknown"),
    pytest.param("==1.0", None, "2.0", "not-installed", id="not-installed-pinned"),
    pytest.param("", None, None, "not-installed", id="not-installed-beats-all"),
    pytest.param("", "1.0", None, "unknown", id="latest-unknown"),
    pytest.param(">=2.0", "1.0", "3.0", "outdated", id="ranges-not-evaluated"),
    pytest.param("==1.0.*", "1.0.5", "1.0.5", "up-to-date", id="wildcard-ok"),
    pytest.param("==1.0.*", "1.1", "1.1", "pin-mismatch", id="wildcard-mismatch"),
    pytest.param("==1", "1.0.0", "1.0", "up-to-date", id="pin-zero-padding"),
    pytest.param("==1.0", "1.0+cpu", "1.0", "up-to-date", id="local-ignored"),
    pytest.param("==1.0+cpu", "1.0", "1.0", "pin-mismatch", id="local-required"),
    pytest.param("===1.0", "1.0.0", "1.0.0", "pin-mismatch", id="arbitrary-eq"),
    pytest.param(">=1,==1.0", "1.0", "1.0", "up-to-date", id="pin-among-clauses"),
    pytest.param("", "2013-spring", "2013-spring", "up-to-date", id="non-pep440-equal"),
    pytest.param("", "2013-spring", "2014-fall", "unknown", id="non-pep440-different"),
]


@pytest.mark.parametrize(("spec", "installed", "latest", "status"), STATUS_CASES)
def test_status(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spec: str,
    installed: str | None,
    latest: str | None,
    status: str,
) -> None:
    path = write(tmp_path / "requirements.txt", f"My_Pkg{spec}\n")
    fake_installed(monkeypatch, {"my-pkg": installed})
    rows = depcheck.check_dependencies(path, fetch_latest=table_fetcher({"my-pkg": latest}))
    assert rows == [
        {
            "package": "My_Pkg",
            "required": spec or None,
            "installed": installed,
            "latest": latest if latest is not None else "unknown",
            "status": status,
        }
    ]


def test_rows_in_file_order_and_fetcher_gets_normalised_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "r.txt", "Zeta_Pkg==1\nalpha\nMid.Pkg>=2\n")
    fake_installed(monkeypatch, {"zeta-pkg": "1", "alpha": "1", "mid-pkg": "2"})
    fetcher = CountingFetcher({"zeta-pkg": "1", "alpha": "2", "mid-pkg": "2"})
    rows = depcheck.check_dependencies(path, fetch_latest=fetcher)
    assert [(r["package"], r["status"]) for r in rows] == [
        ("Zeta_Pkg", "up-to-date"),
        ("alpha", "outdated"),
        ("Mid.Pkg", "up-to-date"),
    ]
    assert sorted(fetcher.calls) == ["alpha", "mid-pkg", "zeta-pkg"]


@pytest.mark.parametrize(
    "fetcher",
    [
        pytest.param(offline, id="raises-urlerror"),
        pytest.param(lambda name: None, id="returns-none"),
        pytest.param(lambda name: "  ", id="returns-blank"),
        pytest.param(lambda name: 1 / 0, id="raises-anything"),
    ],
)
def test_failed_fetch_is_unknown(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fetcher: Callable[[str], str | None],
) -> None:
    path = write(tmp_path / "r.txt", "flask==3.1\nnumpy\n")
    fake_installed(monkeypatch, {"flask": "3.1", "numpy": "2.0"})
    rows = depcheck.check_dependencies(path, fetch_latest=fetcher)
    assert [(r["latest"], r["status"]) for r in rows] == [("unknown", "unknown")] * 2


def test_slow_fetch_beyond_deadline_is_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "r.txt", "fast\nslow\nslower\n")
    fake_installed(monkeypatch, {"fast": "1.0", "slow": "1.0", "slower": "1.0"})
    release = threading.Event()

    def fetch(name: str) -> str | None:
        if name != "fast":
            release.wait(timeout=10)
        return "2.0"

    deadline = 0.3
    try:
        start = time.monotonic()
        rows = depcheck.check_dependencies(
            path, fetch_latest=fetch, deadline=deadline, max_workers=2
        )
        elapsed = time.monotonic() - start
    finally:
        release.set()
    assert elapsed < deadline + 1.0
    assert [(r["package"], r["latest"], r["status"]) for r in rows] == [
        ("fast", "2.0", "outdated"),
        ("slow", "unknown", "unknown"),
        ("slower", "unknown", "unknown"),
    ]


def test_empty_requirements(tmp_path: Path) -> None:
    path = write(tmp_path / "r.txt", "# nothing\n")
    assert depcheck.check_dependencies(path, fetch_latest=offline) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"max_workers": 0}, "max_workers"), ({"deadline": -1.0}, "deadline")],
)
def test_invalid_arguments(tmp_path: Path, kwargs: dict[str, float], message: str) -> None:
    path = write(tmp_path / "r.txt", "flask\n")
    with pytest.raises(ValueError, match=message):
        depcheck.check_dependencies(path, fetch_latest=offline, **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# Installed and latest versions
# --------------------------------------------------------------------------------------


def test_installed_version_of_real_distribution() -> None:
    assert depcheck.installed_version("pytest") == pytest.__version__
    assert depcheck.installed_version("PyTest") == pytest.__version__


def test_installed_version_missing() -> None:
    assert depcheck.installed_version("surely-not-installed-pkg-xyz") is None


class FakeUrlopen:
    """Stand-in for :func:`urllib.request.urlopen` recording its requests."""

    def __init__(self, body: bytes | BaseException) -> None:
        self.body = body
        self.requests: list[tuple[str, float]] = []

    def __call__(self, request: urllib.request.Request, timeout: float) -> io.BytesIO:
        self.requests.append((request.full_url, timeout))
        if isinstance(self.body, BaseException):
            raise self.body
        return io.BytesIO(self.body)


def pypi_document(version: object) -> bytes:
    return json.dumps({"info": {"name": "x", "version": version}}).encode()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(pypi_document("3.1.3"), "3.1.3", id="ok"),
        pytest.param(pypi_document(" 1.0 "), "1.0", id="stripped"),
        pytest.param(b"<html>not json</html>", None, id="bad-json"),
        pytest.param(b"\xff\xfe", None, id="bad-encoding"),
        pytest.param(b"[1, 2]", None, id="not-an-object"),
        pytest.param(b'{"info": null}', None, id="no-info"),
        pytest.param(pypi_document(None), None, id="null-version"),
        pytest.param(pypi_document(""), None, id="empty-version"),
        pytest.param(urllib.error.URLError("offline"), None, id="offline"),
        pytest.param(TimeoutError("timed out"), None, id="timeout"),
        pytest.param(ConnectionResetError(), None, id="reset"),
    ],
)
def test_fetch_latest_pypi(
    monkeypatch: pytest.MonkeyPatch, body: bytes | BaseException, expected: str | None
) -> None:
    monkeypatch.delenv(depcheck.PYPI_URL_ENV, raising=False)
    fake = FakeUrlopen(body)
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    assert depcheck.fetch_latest_pypi("Scikit_Learn", timeout=2.5) == expected
    assert fake.requests == [("https://pypi.org/pypi/scikit-learn/json", 2.5)]


def test_fetch_latest_pypi_index_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeUrlopen(pypi_document("1.0"))
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    monkeypatch.setenv(depcheck.PYPI_URL_ENV, "http://mirror.invalid/pypi/")
    depcheck.fetch_latest_pypi("flask", timeout=1)
    depcheck.fetch_latest_pypi("flask", timeout=1, index_url="https://param.invalid/x")
    assert [url for url, _ in fake.requests] == [
        "http://mirror.invalid/pypi/flask/json",
        "https://param.invalid/x/flask/json",
    ]


def test_fetch_latest_pypi_refuses_other_schemes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeUrlopen(pypi_document("1.0"))
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    assert depcheck.fetch_latest_pypi("x", timeout=1, index_url="file:///etc") is None
    assert fake.requests == []


def test_fetch_latest_pypi_rejects_oversized(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(depcheck, "_MAX_RESPONSE_BYTES", 10)
    monkeypatch.setattr(urllib.request, "urlopen", FakeUrlopen(pypi_document("1.0")))
    assert depcheck.fetch_latest_pypi("x", timeout=1) is None


def test_default_fetcher_is_pypi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "r.txt", "flask\n")
    fake_installed(monkeypatch, {"flask": "1.0"})
    monkeypatch.delenv(depcheck.PYPI_URL_ENV, raising=False)
    fake = FakeUrlopen(pypi_document("2.0"))
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    rows = depcheck.check_dependencies(path, deadline=2.0)
    assert rows[0]["latest"] == "2.0"
    assert fake.requests == [("https://pypi.org/pypi/flask/json", 2.0)]


# --------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A requirements file, a cache path, and faked installed versions."""
    requirements = write(tmp_path / "requirements.txt", "flask==3.1\nNumPy\n")
    fake_installed(monkeypatch, {"flask": "3.1", "numpy": "2.0"})
    return requirements, tmp_path / "cache" / "deps.json"


LATEST = {"flask": "3.2", "numpy": "2.0"}
FETCHED = [
    ("flask", "==3.1", "3.1", "3.2", "outdated"),
    ("NumPy", None, "2.0", "2.0", "up-to-date"),
]
UNFETCHED = [
    ("flask", "==3.1", "3.1", "unknown", "unknown"),
    ("NumPy", None, "2.0", "unknown", "unknown"),
]


def rows_of(report: depcheck.DependencyReport) -> list[tuple[object, ...]]:
    return [tuple(row.values()) for row in report["packages"]]


def age_cache(cache: Path, seconds: float) -> None:
    document = json.loads(cache.read_text(encoding="utf-8"))
    moment = datetime.now(UTC) - timedelta(seconds=seconds)
    document["checked_at"] = moment.isoformat()
    cache.write_text(json.dumps(document), encoding="utf-8")


def test_refresh_cache_writes_file(project: tuple[Path, Path]) -> None:
    requirements, cache = project
    report = depcheck.refresh_cache(requirements, cache, fetch_latest=table_fetcher(LATEST))
    assert report["stale"] is False
    assert report["refreshing"] is False
    assert rows_of(report) == FETCHED
    document = json.loads(cache.read_text(encoding="utf-8"))
    assert document["format"] == 1
    assert document["latest"] == LATEST
    assert len(document["requirements_sha256"]) == 64
    checked_at = datetime.fromisoformat(document["checked_at"])
    assert checked_at.utcoffset() == timedelta(0)
    assert abs((datetime.now(UTC) - checked_at).total_seconds()) < 60
    assert [p.name for p in cache.parent.iterdir()] == ["deps.json"]  # no temp files


def test_fresh_cache_is_served_without_fetching(project: tuple[Path, Path]) -> None:
    requirements, cache = project
    depcheck.refresh_cache(requirements, cache, fetch_latest=table_fetcher(LATEST))
    fetcher = CountingFetcher(LATEST)
    report = depcheck.get(requirements, cache, fetch_latest=fetcher)
    assert report["stale"] is False
    assert report["refreshing"] is False
    assert report["checked_at"] is not None
    assert rows_of(report) == FETCHED
    assert fetcher.calls == []


def test_installed_versions_are_always_current(
    project: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    requirements, cache = project
    depcheck.refresh_cache(requirements, cache, fetch_latest=table_fetcher(LATEST))
    fake_installed(monkeypatch, {"flask": "3.2", "numpy": None})
    report = depcheck.get(requirements, cache, fetch_latest=offline)
    assert [(r["installed"], r["status"]) for r in report["packages"]] == [
        ("3.2", "pin-mismatch"),
        (None, "not-installed"),
    ]


def test_get_returns_immediately_then_serves_refreshed_data(
    project: tuple[Path, Path],
) -> None:
    requirements, cache = project
    fetcher = CountingFetcher(LATEST, block=True)
    try:
        start = time.monotonic()
        first = depcheck.get(requirements, cache, fetch_latest=fetcher)
        second = depcheck.get(requirements, cache, fetch_latest=fetcher)
        elapsed = time.monotonic() - start
        refresh_threads = [t for t in threading.enumerate() if t.name == "depcheck-refresh"]
    finally:
        fetcher.release.set()
    assert elapsed < 1.0
    assert len(refresh_threads) == 1
    for report in (first, second):
        assert report["checked_at"] is None
        assert report["stale"] is True
        assert report["refreshing"] is True
        assert rows_of(report) == UNFETCHED

    assert depcheck.wait_for_refresh(timeout=10)
    assert sorted(fetcher.calls) == ["flask", "numpy"]  # one refresh only
    third = depcheck.get(requirements, cache, fetch_latest=fetcher)
    assert third["stale"] is False
    assert third["refreshing"] is False
    assert third["checked_at"] is not None
    assert rows_of(third) == FETCHED
    assert sorted(fetcher.calls) == ["flask", "numpy"]


def test_only_one_background_thread_per_process(project: tuple[Path, Path], tmp_path: Path) -> None:
    requirements, cache = project
    other_cache = tmp_path / "other.json"
    fetcher = CountingFetcher(LATEST, block=True)
    try:
        first = depcheck.get(requirements, cache, fetch_latest=fetcher)
        other = depcheck.get(requirements, other_cache, fetch_latest=fetcher)
        refresh_threads = [t for t in threading.enumerate() if t.name == "depcheck-refresh"]
    finally:
        fetcher.release.set()
    assert len(refresh_threads) == 1
    assert first["refreshing"] is True
    assert other["refreshing"] is False  # the single slot is busy with `cache`
    assert depcheck.wait_for_refresh(timeout=10)
    assert cache.exists()
    assert not other_cache.exists()
    # The next call for the other cache starts its refresh.
    assert depcheck.get(requirements, other_cache, fetch_latest=fetcher)["refreshing"]
    assert depcheck.wait_for_refresh(timeout=10)
    assert other_cache.exists()


def test_stale_cache_is_served_and_refreshed(project: tuple[Path, Path]) -> None:
    requirements, cache = project
    depcheck.refresh_cache(requirements, cache, fetch_latest=table_fetcher({"flask": "3.1"}))
    age_cache(cache, seconds=3600)
    fetcher = CountingFetcher(LATEST)
    stale = depcheck.get(requirements, cache, max_age_seconds=60, fetch_latest=fetcher)
    assert stale["stale"] is True
    assert stale["refreshing"] is True
    assert [r["latest"] for r in stale["packages"]] == ["3.1", "unknown"]
    assert depcheck.wait_for_refresh(timeout=10)
    fresh = depcheck.get(requirements, cache, max_age_seconds=60, fetch_latest=fetcher)
    assert fresh["stale"] is False
    assert rows_of(fresh) == FETCHED


@pytest.mark.parametrize(
    ("age", "max_age", "stale"),
    [(10, 3600, False), (7200, 3600, True), (-600, 3600, True)],
    ids=["fresh", "too-old", "from-the-future"],
)
def test_cache_age(project: tuple[Path, Path], age: float, max_age: float, stale: bool) -> None:
    requirements, cache = project
    depcheck.refresh_cache(requirements, cache, fetch_latest=table_fetcher(LATEST))
    age_cache(cache, seconds=age)
    report = depcheck.get(requirements, cache, max_age_seconds=max_age, refresh=False)
    assert report["stale"] is stale
    assert report["refreshing"] is False
    assert rows_of(report) == FETCHED


@pytest.mark.parametrize(
    ("retry_after", "stale"), [(3600, False), (5, True)], ids=["recent", "retry"]
)
def test_unknown_latest_versions_are_retried_sooner(
    project: tuple[Path, Path], retry_after: float, stale: bool
) -> None:
    requirements, cache = project
    depcheck.refresh_cache(requirements, cache, fetch_latest=offline)
    age_cache(cache, seconds=10)
    report = depcheck.get(requirements, cache, retry_unknown_seconds=retry_after, refresh=False)
    assert report["stale"] is stale
    assert rows_of(report) == UNFETCHED


def test_refresh_false_does_not_start_a_thread(project: tuple[Path, Path]) -> None:
    requirements, cache = project
    fetcher = CountingFetcher(LATEST)
    report = depcheck.get(requirements, cache, refresh=False, fetch_latest=fetcher)
    assert report["stale"] is True
    assert report["refreshing"] is False
    assert depcheck.wait_for_refresh(timeout=0)
    assert fetcher.calls == []
    assert not cache.exists()


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"{not json", id="truncated"),
        pytest.param(b"\xff\xfe\x00", id="binary"),
        pytest.param(b"[]", id="not-an-object"),
        pytest.param(b'{"format": 99}', id="unknown-format"),
        pytest.param(
            b'{"format": 1, "checked_at": "yesterday", "requirements_sha256": "x", "latest": {}}',
            id="bad-timestamp",
        ),
        pytest.param(
            b'{"format": 1, "checked_at": "2024-01-01T00:00:00+00:00", '
            b'"requirements_sha256": "x", "latest": {"flask": 3}}',
            id="bad-version-type",
        ),
    ],
)
def test_corrupt_cache_is_treated_as_missing(project: tuple[Path, Path], content: bytes) -> None:
    requirements, cache = project
    cache.parent.mkdir(parents=True)
    cache.write_bytes(content)
    report = depcheck.get(requirements, cache, fetch_latest=table_fetcher(LATEST))
    assert report["checked_at"] is None
    assert report["stale"] is True
    assert rows_of(report) == UNFETCHED
    assert depcheck.wait_for_refresh(timeout=10)
    repaired = depcheck.get(requirements, cache, fetch_latest=offline)
    assert repaired["stale"] is False
    assert rows_of(repaired) == FETCHED


@pytest.mark.parametrize("edited", ["main", "include"])
def test_requirements_change_invalidates_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edited: str
) -> None:
    requirements = write(tmp_path / "requirements.txt", "flask==3.1\n-r extra.txt\n")
    extra = write(tmp_path / "extra.txt", "numpy\n")
    cache = tmp_path / "deps.json"
    fake_installed(monkeypatch, {"flask": "3.1", "numpy": "2.0", "scipy": "1.0"})
    depcheck.refresh_cache(requirements, cache, fetch_latest=table_fetcher(LATEST))
    assert depcheck.get(requirements, cache, refresh=False)["stale"] is False

    if edited == "main":
        write(requirements, "flask==3.1\n-r extra.txt\nscipy\n")
    else:
        write(extra, "numpy\nscipy\n")
    report = depcheck.get(
        requirements,
        cache,
        fetch_latest=table_fetcher({**LATEST, "scipy": "1.1"}),
    )
    assert report["stale"] is True
    assert report["refreshing"] is True
    # Latest versions already known are still shown, the new package is unknown.
    assert [r["latest"] for r in report["packages"]] == ["3.2", "2.0", "unknown"]
    assert depcheck.wait_for_refresh(timeout=10)
    refreshed = depcheck.get(requirements, cache, refresh=False)
    assert refreshed["stale"] is False
    assert [r["latest"] for r in refreshed["packages"]] == ["3.2", "2.0", "1.1"]


def test_missing_requirements_file_raises(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        depcheck.get(tmp_path / "missing.txt", tmp_path / "deps.json")


def test_failed_write_keeps_old_cache_and_removes_temp_file(
    project: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    requirements, cache = project
    depcheck.refresh_cache(requirements, cache, fetch_latest=offline)
    before = cache.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        depcheck.refresh_cache(requirements, cache, fetch_latest=table_fetcher(LATEST))
    assert cache.read_bytes() == before
    assert [p.name for p in cache.parent.iterdir()] == ["deps.json"]


def test_background_refresh_survives_unwritable_cache(
    project: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    requirements, cache = project

    def broken_replace(src: str, dst: str) -> None:
        raise PermissionError("read-only file system")

    monkeypatch.setattr(os, "replace", broken_replace)
    first = depcheck.get(requirements, cache, fetch_latest=table_fetcher(LATEST))
    assert first["refreshing"] is True
    assert depcheck.wait_for_refresh(timeout=10)
    assert not cache.exists()
    # The result is kept in memory, so the next call is served fresh data.
    second = depcheck.get(requirements, cache, fetch_latest=offline)
    assert second["stale"] is False
    assert rows_of(second) == FETCHED


def test_background_refresh_with_missing_requirements_logs(
    project: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    requirements, cache = project
    release = threading.Event()
    cache_obj = depcheck.DependencyCache(requirements, cache, fetch_latest=lambda name: "1.0")
    original = depcheck._parse_with_digest
    calls = 0

    def parse_once(path: os.PathLike[str]) -> tuple[list[depcheck.Requirement], str]:
        nonlocal calls
        calls += 1
        if calls > 1:  # the background thread's parse fails
            release.set()
            raise ConfigError("requirements vanished")
        return original(path)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(depcheck, "_parse_with_digest", parse_once)
        assert cache_obj.get()["refreshing"] is True
        assert release.wait(timeout=10)
        assert depcheck.wait_for_refresh(timeout=10)
    assert not cache.exists()
    assert "background dependency refresh failed" in caplog.text
