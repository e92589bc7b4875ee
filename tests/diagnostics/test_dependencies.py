"""Tests of :mod:`monitoring.diagnostics.dependencies`.

The network, the installed distributions and the clock are fakes: no test reaches PyPI
or sleeps.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import logging
import os
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from monitoring.diagnostics import dependencies as depcheck
from monitoring.exceptions import ConfigError

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T0_ISO = "2026-03-01T12:00:00+00:00"
Row = tuple[str, str | None, str | None, str, str]

# --------------------------------------------------------------------------------------
# Fakes and helpers
# --------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_leftover_refresh() -> Iterator[None]:
    """Every test must leave no background refresh running."""
    yield
    assert depcheck.wait_for_refresh(timeout=10)


class Clock:
    """Stand-in for the module's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(depcheck, "_now", fake)
    return fake


@pytest.fixture(autouse=True)
def installed(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Installed versions by PEP 503 name; a name missing from it is not installed."""
    versions: dict[str, str] = {}
    monkeypatch.setattr(
        depcheck, "installed_version", lambda name: versions.get(canonicalize_name(name))
    )
    return versions


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def table(latest: Mapping[str, str | None]) -> Callable[[str], str | None]:
    """Fetcher answering from ``latest``."""
    return lambda name: latest.get(name)


def offline(name: str) -> str | None:
    raise urllib.error.URLError("network is unreachable")


class BlockingFetcher:
    """Fetcher that records the names asked and answers once released."""

    def __init__(self, latest: Mapping[str, str]) -> None:
        self.latest = latest
        self.calls: list[str] = []
        self.release = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, name: str) -> str | None:
        with self._lock:
            self.calls.append(name)
        self.release.wait(timeout=10)
        return self.latest.get(name)


def rows_of(report: depcheck.DependencyReport) -> list[Row]:
    return [
        (r["package"], r["required"], r["installed"], r["latest"], r["status"])
        for r in report["packages"]
    ]


def check(
    path: Path,
    latest: Mapping[str, str | None] | Callable[[str], str | None] | None = None,
    *,
    deadline: float = 10.0,
) -> list[Row]:
    """Rows of a foreground check of ``path``, given a fetcher or its answers by name."""
    fetch = latest if callable(latest) else table(latest or {})
    cache = path.parent / "cache.json"
    return rows_of(depcheck.refresh_cache(path, cache, fetch_latest=fetch, deadline=deadline))


def refresh_threads() -> int:
    return sum(t.name == "depcheck-refresh" for t in threading.enumerate())


# --------------------------------------------------------------------------------------
# The requirements file
# --------------------------------------------------------------------------------------


PARSE_CASES = [
    pytest.param(
        "# comment only\n\n   \nflask==3.1.3  # trailing comment\n",
        [("flask", "==3.1.3")],
        id="comments-and-blanks",
    ),
    pytest.param("numpy\n", [("numpy", None)], id="no-specifier"),
    pytest.param(
        "requests[socks, security] >= 2.0 , < 3\nfoo (>=1.0,<2)\n",
        [("requests", "<3,>=2.0"), ("foo", "<2,>=1.0")],
        id="extras-whitespace-parentheses",
    ),
    pytest.param(
        'pywin32>=300; sys_platform == "win32"\nscipy ;python_version<"3.12"\n',
        [("pywin32", ">=300"), ("scipy", None)],
        id="markers-not-evaluated",
    ),
    pytest.param(
        "a~=1.4.2\nb===1.0-weird\nc==2.*\nd!=1.5\n",
        [("a", "~=1.4.2"), ("b", "===1.0-weird"), ("c", "==2.*"), ("d", "!=1.5")],
        id="operators",
    ),
    pytest.param(
        "--index-url https://example.invalid/simple\n"
        "--extra-index-url=https://example.invalid/b\n"
        "-i https://example.invalid/c\n"
        "-c constraints.txt\n-e .\n--pre\n-f ./wheels\nflask\n",
        [("flask", None)],
        id="option-lines-ignored",
    ),
    pytest.param(
        "flask==3.1.3 \\\n    --hash=sha256:aaaa \\\n    --hash=sha256:bbbb\nnumpy\n",
        [("flask", "==3.1.3"), ("numpy", None)],
        id="hashes-and-continuations",
    ),
    pytest.param(
        "flask\\\n>=3\\\n,<4\n", [("flask", "<4,>=3")], id="continuation-inside-requirement"
    ),
    pytest.param("# old pin \\\nflask\n", [("flask", None)], id="comment-does-not-continue"),
    pytest.param(
        "pkg @ https://example.invalid/pkg-1.0.tar.gz#sha256=ab ; python_version>'3'\n",
        [("pkg", None)],
        id="named-url",
    ),
    pytest.param(
        "numpy>=1\nNumPy<3\nnumpy>=1\n",
        [("numpy", "<3,>=1")],
        id="duplicates-merged-first-spelling-kept",
    ),
    pytest.param(
        "Scikit_Learn==1.0\nSQLAlchemy\n",
        [("Scikit_Learn", "==1.0"), ("SQLAlchemy", None)],
        id="spelling-kept",
    ),
    pytest.param("\ufeffflask==1\n", [("flask", "==1")], id="utf8-bom"),
]


@pytest.mark.parametrize(("text", "expected"), PARSE_CASES)
def test_requirements_file(
    tmp_path: Path, text: str, expected: list[tuple[str, str | None]]
) -> None:
    path = write(tmp_path / "requirements.txt", text)
    assert [(package, required) for package, required, *_ in check(path)] == expected


def test_lines_that_name_no_package_are_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(
        tmp_path / "requirements.txt",
        "git+https://example.invalid/x/y.git\n./local/pkg\n/abs/pkg\n"
        "foo-1.0-py3-none-any.whl\nflask 3.1\nnumpy\n",
    )
    with caplog.at_level(logging.WARNING, logger=depcheck.__name__):
        assert check(path) == [("numpy", None, None, "unknown", "not-installed")]
    assert caplog.messages == [
        f"{path}:1: 'git+https://example.invalid/x/y.git' is not a named requirement, not checked",
        f"{path}:2: './local/pkg' is not a named requirement, not checked",
        f"{path}:3: '/abs/pkg' is not a named requirement, not checked",
        f"{path}:4: 'foo-1.0-py3-none-any.whl' is not a named requirement, not checked",
        f"{path}:5: 'flask 3.1' is not a named requirement, not checked",
    ]


def test_includes_are_relative_to_the_including_file_and_read_once(tmp_path: Path) -> None:
    main = write(
        tmp_path / "requirements.txt",
        "flask\n-r sub/dev.txt\nnumpy\n-r requirements.txt\n",
    )
    write(
        tmp_path / "sub" / "dev.txt",
        "pytest==9.0\n--requirement=more.txt\n-r ../requirements.txt\n",
    )
    write(tmp_path / "sub" / "more.txt", "ruff\n-rdev.txt\n--requirement ../last.txt\n")
    write(tmp_path / "last.txt", "mypy\n")
    assert [package for package, *_ in check(main)] == ["flask", "pytest", "ruff", "mypy", "numpy"]


def test_include_by_absolute_path(tmp_path: Path) -> None:
    other = write(tmp_path / "elsewhere" / "base.txt", "pandas==3.0\n")
    main = write(tmp_path / "req" / "requirements.txt", f"-r {other}\nflask\n")
    assert [package for package, *_ in check(main)] == ["pandas", "flask"]


def test_remote_include_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "r.txt", "-r https://example.invalid/r.txt\nflask\n")
    with caplog.at_level(logging.WARNING, logger=depcheck.__name__):
        assert [package for package, *_ in check(path)] == ["flask"]
    assert caplog.messages == [f"{path}:1: remote include 'https://example.invalid/r.txt' ignored"]


@pytest.mark.parametrize(
    ("files", "unreadable"),
    [
        pytest.param({}, "r.txt", id="missing"),
        pytest.param({"r.txt": b"flask\n-r missing.txt\n"}, "missing.txt", id="missing-include"),
        pytest.param(
            {"r.txt": b"flask\n-r bad.txt\n", "bad.txt": b"\xff\xfe\xfa"}, "bad.txt", id="not-utf8"
        ),
    ],
)
def test_unreadable_requirements_raise_config_error_naming_the_file(
    tmp_path: Path, files: dict[str, bytes], unreadable: str
) -> None:
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    message = f"cannot read requirements file {re.escape(str(tmp_path / unreadable))}: "
    with pytest.raises(ConfigError, match=message):
        depcheck.refresh_cache(tmp_path / "r.txt", tmp_path / "cache.json", fetch_latest=offline)
    with pytest.raises(ConfigError, match=message):
        depcheck.get(tmp_path / "r.txt", tmp_path / "cache.json", refresh=False)


# --------------------------------------------------------------------------------------
# Statuses
# --------------------------------------------------------------------------------------


STATUS_CASES = [
    # specifier, installed, latest, status
    pytest.param("==1.0", "1.0", "1.0", "up-to-date", id="pinned-current"),
    pytest.param("", "2.0rc1", "1.9", "up-to-date", id="ahead-of-the-index"),
    pytest.param("==1.0", "1.0", "2.0", "outdated", id="pinned-outdated"),
    pytest.param("", "1.0", "1.0.post1", "outdated", id="unpinned-outdated"),
    pytest.param("==1.0", "1.1", "2.0", "pin-mismatch", id="pin-mismatch"),
    pytest.param(">=2.0", "1.0", "3.0", "pin-mismatch", id="range-mismatch"),
    pytest.param("!=1.4.3,~=1.4", "1.4.3", "1.5", "pin-mismatch", id="excluded-version"),
    pytest.param(">=1.0", "2.0rc1", "1.9", "up-to-date", id="pre-release-satisfies-range"),
    pytest.param("==1.0", "1.1", None, "pin-mismatch", id="mismatch-beats-unknown"),
    pytest.param("==1.0", None, "2.0", "not-installed", id="not-installed-beats-mismatch"),
    pytest.param("", None, None, "not-installed", id="not-installed-beats-unknown"),
    pytest.param("", "1.0", None, "unknown", id="latest-not-fetched"),
    pytest.param("", "1.0", "nightly", "unknown", id="latest-not-pep440"),
    pytest.param("", "2013-spring", "2013-spring", "up-to-date", id="not-pep440-equal"),
    pytest.param("", "2013-spring", "2014-fall", "unknown", id="not-pep440-different"),
]


@pytest.mark.parametrize(("spec", "have", "latest", "status"), STATUS_CASES)
def test_status(
    tmp_path: Path,
    installed: dict[str, str],
    spec: str,
    have: str | None,
    latest: str | None,
    status: str,
) -> None:
    path = write(tmp_path / "requirements.txt", f"My_Pkg{spec}\n")
    if have is not None:
        installed["my-pkg"] = have
    assert check(path, {"my-pkg": latest}) == [
        ("My_Pkg", spec or None, have, latest or "unknown", status)
    ]


def test_fetcher_gets_pep503_names_and_rows_keep_file_order(
    tmp_path: Path, installed: dict[str, str]
) -> None:
    path = write(tmp_path / "r.txt", "Zeta_Pkg==1\nalpha\nMid.Pkg>=2\n")
    installed.update({"zeta-pkg": "1", "alpha": "1", "mid-pkg": "2"})
    asked: list[str] = []

    def fetch(name: str) -> str:
        asked.append(name)
        return {"zeta-pkg": "1", "alpha": "2", "mid-pkg": "2"}[name]

    assert check(path, fetch) == [
        ("Zeta_Pkg", "==1", "1", "1", "up-to-date"),
        ("alpha", None, "1", "2", "outdated"),
        ("Mid.Pkg", ">=2", "2", "2", "up-to-date"),
    ]
    assert sorted(asked) == ["alpha", "mid-pkg", "zeta-pkg"]


@pytest.mark.parametrize(
    ("fetcher", "latest"),
    [
        pytest.param(offline, "unknown", id="raises-urlerror"),
        pytest.param(lambda name: 1 / 0, "unknown", id="raises-anything"),
        pytest.param(lambda name: None, "unknown", id="returns-none"),
        pytest.param(lambda name: "  ", "unknown", id="returns-blank"),
        pytest.param(lambda name: " 3.2\n", "3.2", id="returns-padded"),
    ],
)
def test_what_a_fetcher_answers(
    tmp_path: Path,
    installed: dict[str, str],
    fetcher: Callable[[str], str | None],
    latest: str,
) -> None:
    path = write(tmp_path / "r.txt", "flask==3.1\n")
    installed["flask"] = "3.1"
    status = "unknown" if latest == "unknown" else "outdated"
    assert check(path, fetcher) == [("flask", "==3.1", "3.1", latest, status)]


def test_fetches_later_than_the_deadline_are_unknown(
    tmp_path: Path, installed: dict[str, str]
) -> None:
    path = write(tmp_path / "r.txt", "fast\nslow\n")
    installed.update({"fast": "1.0", "slow": "1.0"})
    release = threading.Event()

    def fetch(name: str) -> str:
        if name == "slow":
            release.wait(timeout=10)
        return "2.0"

    try:
        rows = check(path, fetch, deadline=0.5)
    finally:
        release.set()  # the call above returned while "slow" was still blocked
    assert rows == [
        ("fast", None, "1.0", "2.0", "outdated"),
        ("slow", None, "1.0", "unknown", "unknown"),
    ]


def test_empty_requirements(tmp_path: Path) -> None:
    path = write(tmp_path / "r.txt", "# nothing\n")
    assert check(path) == []


# --------------------------------------------------------------------------------------
# fetch_latest_pypi
# --------------------------------------------------------------------------------------


class FakeUrlopen:
    """Stand-in for :func:`urllib.request.urlopen` recording (url, timeout)."""

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
        pytest.param(b"<html>not json</html>", None, id="not-json"),
        pytest.param(b"\xff\xfe", None, id="bad-encoding"),
        pytest.param(b"[1, 2]", None, id="not-an-object"),
        pytest.param(b'{"info": null}', None, id="no-info"),
        pytest.param(pypi_document(None), None, id="null-version"),
        pytest.param(pypi_document(3), None, id="number-version"),
        pytest.param(pypi_document(""), None, id="empty-version"),
        pytest.param(urllib.error.URLError("offline"), None, id="offline"),
        pytest.param(TimeoutError("timed out"), None, id="timeout"),
        pytest.param(ConnectionResetError(), None, id="reset"),
        pytest.param(http.client.IncompleteRead(b""), None, id="incomplete-read"),
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


def test_fetch_latest_pypi_refuses_other_schemes(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeUrlopen(pypi_document("1.0"))
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    monkeypatch.setenv(depcheck.PYPI_URL_ENV, "file:///etc")
    assert depcheck.fetch_latest_pypi("x", timeout=1) is None
    assert fake.requests == []


def test_fetch_latest_pypi_rejects_oversized_responses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(depcheck, "_MAX_RESPONSE_BYTES", 10)
    monkeypatch.setattr(urllib.request, "urlopen", FakeUrlopen(pypi_document("1.0")))
    assert depcheck.fetch_latest_pypi("x", timeout=1) is None


def test_the_default_fetcher_is_pypi_with_the_deadline_as_timeout(
    tmp_path: Path, installed: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "r.txt", "flask\n")
    installed["flask"] = "1.0"
    monkeypatch.delenv(depcheck.PYPI_URL_ENV, raising=False)
    fake = FakeUrlopen(pypi_document("2.0"))
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    report = depcheck.refresh_cache(path, tmp_path / "c.json", deadline=2.0)
    assert rows_of(report) == [("flask", None, "1.0", "2.0", "outdated")]
    assert fake.requests == [("https://pypi.org/pypi/flask/json", 2.0)]


# --------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, installed: dict[str, str]) -> tuple[Path, Path]:
    """A requirements file and a cache path; flask 3.1 and numpy 2.0 are installed."""
    installed.update({"flask": "3.1", "numpy": "2.0"})
    return write(tmp_path / "requirements.txt", "flask==3.1\nNumPy\n"), tmp_path / "c" / "d.json"


LATEST = {"flask": "3.2", "numpy": "2.0"}
FETCHED: list[Row] = [
    ("flask", "==3.1", "3.1", "3.2", "outdated"),
    ("NumPy", None, "2.0", "2.0", "up-to-date"),
]
UNFETCHED: list[Row] = [
    ("flask", "==3.1", "3.1", "unknown", "unknown"),
    ("NumPy", None, "2.0", "unknown", "unknown"),
]


def test_refresh_cache_writes_the_cache_file(project: tuple[Path, Path]) -> None:
    requirements, cache = project
    report = depcheck.refresh_cache(requirements, cache, fetch_latest=table(LATEST))
    assert report == {
        "checked_at": T0_ISO,
        "stale": False,
        "refreshing": False,
        "packages": [
            {
                "package": "flask",
                "required": "==3.1",
                "installed": "3.1",
                "latest": "3.2",
                "status": "outdated",
            },
            {
                "package": "NumPy",
                "required": None,
                "installed": "2.0",
                "latest": "2.0",
                "status": "up-to-date",
            },
        ],
    }
    assert json.loads(cache.read_text(encoding="utf-8")) == {
        "format": 1,
        "checked_at": T0_ISO,
        "requirements_sha256": hashlib.sha256(requirements.read_bytes() + b"\0").hexdigest(),
        "latest": LATEST,
    }
    assert [p.name for p in cache.parent.iterdir()] == ["d.json"]  # no temporary file left


def test_a_fresh_cache_is_served_without_fetching(project: tuple[Path, Path]) -> None:
    requirements, cache = project
    depcheck.refresh_cache(requirements, cache, fetch_latest=table(LATEST))
    fetcher = BlockingFetcher(LATEST)
    report = depcheck.get(requirements, cache, fetch_latest=fetcher)
    assert (report["checked_at"], report["stale"], report["refreshing"]) == (T0_ISO, False, False)
    assert rows_of(report) == FETCHED
    assert fetcher.calls == []


@pytest.mark.parametrize(
    ("age", "stale"),
    [(0, False), (3600, False), (3601, True), (-1, True)],
    ids=["new", "at-max-age", "too-old", "from-the-future"],
)
def test_cache_age(project: tuple[Path, Path], clock: Clock, age: float, stale: bool) -> None:
    requirements, cache = project
    depcheck.refresh_cache(requirements, cache, fetch_latest=table(LATEST))
    clock.advance(age)
    report = depcheck.get(requirements, cache, max_age_seconds=3600, refresh=False)
    assert (report["checked_at"], report["stale"], report["refreshing"]) == (T0_ISO, stale, False)
    assert rows_of(report) == FETCHED


@pytest.mark.parametrize(("retry_after", "stale"), [(60, False), (59, True)])
def test_unknown_latest_versions_are_retried_sooner(
    project: tuple[Path, Path], clock: Clock, retry_after: float, stale: bool
) -> None:
    requirements, cache = project
    depcheck.refresh_cache(requirements, cache, fetch_latest=table({"flask": "3.2"}))
    clock.advance(60)
    report = depcheck.get(requirements, cache, retry_unknown_seconds=retry_after, refresh=False)
    assert report["stale"] is stale
    assert rows_of(report) == [FETCHED[0], UNFETCHED[1]]


def test_installed_versions_are_always_read_afresh(
    project: tuple[Path, Path], installed: dict[str, str]
) -> None:
    requirements, cache = project
    depcheck.refresh_cache(requirements, cache, fetch_latest=table(LATEST))
    installed["flask"] = "3.2"
    del installed["numpy"]
    report = depcheck.get(requirements, cache, refresh=False)
    assert rows_of(report) == [
        ("flask", "==3.1", "3.2", "3.2", "pin-mismatch"),
        ("NumPy", None, None, "2.0", "not-installed"),
    ]


@pytest.mark.parametrize("edited", ["main", "include"])
def test_editing_the_requirements_makes_the_cache_stale(
    tmp_path: Path, installed: dict[str, str], edited: str
) -> None:
    requirements = write(tmp_path / "requirements.txt", "flask==3.1\n-r extra.txt\n")
    extra = write(tmp_path / "extra.txt", "numpy\n")
    cache = tmp_path / "d.json"
    installed.update({"flask": "3.1", "numpy": "2.0", "scipy": "1.0"})
    depcheck.refresh_cache(requirements, cache, fetch_latest=table(LATEST))
    if edited == "main":
        write(requirements, "flask==3.1\n-r extra.txt\nscipy\n")
    else:
        write(extra, "numpy\nscipy\n")
    stale = depcheck.get(requirements, cache, fetch_latest=table({**LATEST, "scipy": "1.1"}))
    assert (stale["stale"], stale["refreshing"]) == (True, True)
    # The versions already known are still shown.
    assert [row["latest"] for row in stale["packages"]] == ["3.2", "2.0", "unknown"]
    assert depcheck.wait_for_refresh(timeout=10)
    fresh = depcheck.get(requirements, cache, refresh=False)
    assert fresh["stale"] is False
    assert [row["latest"] for row in fresh["packages"]] == ["3.2", "2.0", "1.1"]


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
            b'{"format": 1, "checked_at": "2026-03-01T12:00:00+00:00", '
            b'"requirements_sha256": "x", "latest": {"flask": 3}}',
            id="bad-version-type",
        ),
    ],
)
def test_a_corrupt_cache_is_treated_as_missing_and_rewritten(
    project: tuple[Path, Path], caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    requirements, cache = project
    cache.parent.mkdir(parents=True)
    cache.write_bytes(content)
    report = depcheck.get(requirements, cache, fetch_latest=table(LATEST))
    assert (report["checked_at"], report["stale"], report["refreshing"]) == (None, True, True)
    assert rows_of(report) == UNFETCHED
    assert f"dependency cache {cache} is unreadable or corrupt, ignored" in caplog.messages
    assert depcheck.wait_for_refresh(timeout=10)
    repaired = depcheck.get(requirements, cache, fetch_latest=offline)
    assert (repaired["checked_at"], repaired["stale"]) == (T0_ISO, False)
    assert rows_of(repaired) == FETCHED


def test_refresh_cache_that_cannot_write_raises_and_keeps_the_old_file(
    project: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    requirements, cache = project
    depcheck.refresh_cache(requirements, cache, fetch_latest=offline)
    before = cache.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        depcheck.refresh_cache(requirements, cache, fetch_latest=table(LATEST))
    assert cache.read_bytes() == before
    assert [p.name for p in cache.parent.iterdir()] == ["d.json"]


# --------------------------------------------------------------------------------------
# The background refresh
# --------------------------------------------------------------------------------------


def test_get_answers_at_once_while_a_single_refresh_runs(project: tuple[Path, Path]) -> None:
    requirements, cache = project
    fetcher = BlockingFetcher(LATEST)
    try:
        first = depcheck.get(requirements, cache, fetch_latest=fetcher)
        second = depcheck.get(requirements, cache, fetch_latest=fetcher)
        threads = refresh_threads()
    finally:
        fetcher.release.set()
    assert threads == 1
    for report in (first, second):  # answered while the fetcher was still blocked
        assert (report["checked_at"], report["stale"], report["refreshing"]) == (None, True, True)
        assert rows_of(report) == UNFETCHED
    assert depcheck.wait_for_refresh(timeout=10)
    assert sorted(fetcher.calls) == ["flask", "numpy"]  # one refresh only
    third = depcheck.get(requirements, cache, fetch_latest=fetcher)
    assert (third["checked_at"], third["stale"], third["refreshing"]) == (T0_ISO, False, False)
    assert rows_of(third) == FETCHED
    assert sorted(fetcher.calls) == ["flask", "numpy"]


def test_one_background_refresh_per_process(project: tuple[Path, Path], tmp_path: Path) -> None:
    requirements, cache = project
    other = tmp_path / "other.json"
    fetcher = BlockingFetcher(LATEST)
    try:
        first = depcheck.get(requirements, cache, fetch_latest=fetcher)
        second = depcheck.get(requirements, other, fetch_latest=fetcher)
        threads = refresh_threads()
    finally:
        fetcher.release.set()
    assert threads == 1
    assert (first["refreshing"], second["refreshing"]) == (True, False)
    assert depcheck.wait_for_refresh(timeout=10)
    assert (cache.exists(), other.exists()) == (True, False)
    # The slot is free again: the next call for the other cache starts its refresh.
    assert depcheck.get(requirements, other, fetch_latest=fetcher)["refreshing"] is True
    assert depcheck.wait_for_refresh(timeout=10)
    assert other.exists()


def test_refresh_false_starts_no_refresh(project: tuple[Path, Path]) -> None:
    requirements, cache = project
    fetcher = BlockingFetcher(LATEST)
    report = depcheck.get(requirements, cache, refresh=False, fetch_latest=fetcher)
    assert (report["stale"], report["refreshing"]) == (True, False)
    assert refresh_threads() == 0
    assert fetcher.calls == []
    assert not cache.exists()


def test_a_refresh_that_cannot_be_written_is_served_from_memory(
    project: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    requirements, cache = project

    def broken_replace(src: str, dst: str) -> None:
        raise PermissionError("read-only file system")

    monkeypatch.setattr(os, "replace", broken_replace)
    assert depcheck.get(requirements, cache, fetch_latest=table(LATEST))["refreshing"] is True
    assert depcheck.wait_for_refresh(timeout=10)
    assert not cache.exists()
    assert (
        f"cannot write dependency cache {cache} (read-only file system), kept in memory"
        in caplog.messages
    )
    report = depcheck.get(requirements, cache, fetch_latest=offline)
    assert (report["checked_at"], report["stale"], report["refreshing"]) == (T0_ISO, False, False)
    assert rows_of(report) == FETCHED


def test_a_failed_refresh_is_logged_and_frees_the_slot(
    project: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    requirements, cache = project

    def broken_write(path: Path, text: str) -> Path:
        raise RuntimeError("boom")

    monkeypatch.setattr(depcheck, "atomic_write_text", broken_write)
    assert depcheck.get(requirements, cache, fetch_latest=table(LATEST))["refreshing"] is True
    assert depcheck.wait_for_refresh(timeout=10)
    assert "background dependency refresh failed" in caplog.messages
    assert not cache.exists()
    assert depcheck.get(requirements, cache, fetch_latest=table(LATEST))["refreshing"] is True
