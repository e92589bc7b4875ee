"""Offline-safe, cached check of the service's dependencies.

Each requirement of ``requirements.txt`` and its includes gives a row: package,
specifier, installed version, latest release on PyPI and a status, the first that
applies: ``not-installed``; ``pin-mismatch`` (not satisfied, pre-releases included, as
in ``pip check``); ``unknown`` (latest not fetched or not comparable); ``outdated``;
``up-to-date``. Latest versions are fetched under a deadline into a JSON cache, which
:func:`get` serves at once while at most one thread per process refreshes it.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import http.client
import importlib.metadata
import json
import logging
import os
import re
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, NamedTuple, TypedDict

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from monitoring.exceptions import ConfigError
from monitoring.storage.files import atomic_write_text

logger = logging.getLogger(__name__)

#: Environment variable overriding the index used by :func:`fetch_latest_pypi`.
PYPI_URL_ENV = "MONITORING_PYPI_URL"
DEFAULT_PYPI_URL = "https://pypi.org/pypi"
_MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # some projects' JSON documents are large
_MAX_WORKERS = 8
_CACHE_FORMAT = 1
_ARCHIVES = (".whl", ".zip", ".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tar")
_COMMENT = re.compile(r"(^|\s+)#.*$")
_INCLUDE = re.compile(r"^(?:-r\s*|--requirement(?:\s*=\s*|\s+))(?P<path>\S.*?)\s*$")

Status = Literal["up-to-date", "outdated", "not-installed", "pin-mismatch", "unknown"]
Fetcher = Callable[[str], str | None]
PathArg = str | os.PathLike[str]


class DependencyRow(TypedDict):
    """One package of a report (``required`` is ``None`` without a specifier)."""

    package: str
    required: str | None
    installed: str | None
    latest: str
    status: Status


class DependencyReport(TypedDict):
    """What :func:`get` and :func:`refresh_cache` return."""

    checked_at: str | None
    stale: bool
    refreshing: bool
    packages: list[DependencyRow]


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield ``(first line number, line)``, continuations joined, comments dropped."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate([*text.splitlines(), ""], start=1):
        if not pending:
            start = number
        if raw.endswith("\\") and not raw.lstrip().startswith("#"):
            pending.append(raw[:-1])
            continue
        line = _COMMENT.sub("", "".join([*pending, raw])).strip()
        pending = []
        if line:
            yield start, line


def _parse(path: Path) -> tuple[list[Requirement], str]:
    """The requirements of ``path`` and its includes in file order, and their files' sha256."""
    found: dict[str, Requirement] = {}
    seen: set[str] = set()
    digest = hashlib.sha256()

    def read(path: Path) -> None:
        if os.path.realpath(path) in seen:
            return  # already read: also ends include cycles
        seen.add(os.path.realpath(path))
        try:
            data = path.read_bytes()
            text = data.decode("utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read requirements file {path}: {exc}") from exc
        digest.update(data + b"\0")
        for number, line in _lines(text):
            where = f"{path}:{number}"
            if include := _INCLUDE.match(line):
                if "://" in include["path"]:
                    logger.warning("%s: remote include %r ignored", where, include["path"])
                else:
                    read(path.parent / Path(include["path"]).expanduser())
                continue
            if line.startswith("-"):
                continue  # --index-url, -c, -e, --pre ...: nothing to check
            spec = re.split(r"\s+(?=-)", line, maxsplit=1)[0]  # drop --hash and co.
            try:
                requirement = Requirement(spec)
            except InvalidRequirement:
                requirement = None
            if requirement is None or requirement.name.lower().endswith(_ARCHIVES):
                logger.warning("%s: %r is not a named requirement, not checked", where, spec)
                continue
            key = canonicalize_name(requirement.name)
            if key in found:  # listed twice: first spelling, clauses combined
                found[key].specifier &= requirement.specifier
            else:
                found[key] = requirement

    read(path)
    return list(found.values()), digest.hexdigest()


def installed_version(name: str) -> str | None:
    """The installed version of distribution ``name``, ``None`` if not installed."""
    try:
        return importlib.metadata.version(name) or None
    except (importlib.metadata.PackageNotFoundError, OSError, ValueError):  # or bad metadata
        return None


def fetch_latest_pypi(name: str, *, timeout: float, index_url: str | None = None) -> str | None:
    """Fetch ``info.version`` of ``<index_url>/<PEP 503 name>/json``; ``None`` on any failure.

    ``index_url`` (http(s) only) defaults to ``$MONITORING_PYPI_URL``, then PyPI; a
    response over :data:`_MAX_RESPONSE_BYTES` counts as a failure.
    """
    base = (index_url or os.environ.get(PYPI_URL_ENV) or DEFAULT_PYPI_URL).rstrip("/")
    url = f"{base}/{urllib.parse.quote(canonicalize_name(name), safe='')}/json"
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        logger.warning("refusing to fetch %s: only http(s) index URLs are allowed", url)
        return None
    headers = {"Accept": "application/json", "User-Agent": "monitoring-depcheck"}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(_MAX_RESPONSE_BYTES + 1)
        if len(body) > _MAX_RESPONSE_BYTES:
            raise ValueError(f"response over {_MAX_RESPONSE_BYTES} bytes")
        version = json.loads(body)["info"]["version"]
    except (OSError, ValueError, LookupError, TypeError, http.client.HTTPException) as exc:
        logger.info("cannot fetch the latest version of %s: %s", name, exc)
        return None
    return _version(version)


def _version(value: object) -> str | None:
    """A fetched version, stripped; anything but a non-blank string is ``None``."""
    return (value.strip() or None) if isinstance(value, str) else None


def _status(requirement: Requirement, installed: str | None, latest: str | None) -> Status:
    """The status of the module docstring."""
    if installed is None:
        return "not-installed"
    if not requirement.specifier.contains(installed, prereleases=True):
        return "pin-mismatch"
    if latest is None:
        return "unknown"
    try:
        return "outdated" if Version(installed) < Version(latest) else "up-to-date"
    except InvalidVersion:  # not PEP 440: only equality can be told
        return "up-to-date" if installed == latest else "unknown"


class _Snapshot(NamedTuple):
    """The content of a cache file."""

    checked_at: datetime
    digest: str
    latest: dict[str, str | None]


_lock = threading.Lock()
_running: tuple[threading.Thread, str] | None = None  # the refresh thread and its cache
_unwritten: dict[str, _Snapshot] = {}  # refresh results whose cache could not be written


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _read_cache(path: Path) -> _Snapshot | None:
    """Read a cache file; a missing, unreadable or corrupt one gives ``None``."""
    try:
        document = json.loads(path.read_bytes())
        moment = datetime.fromisoformat(document["checked_at"])
        digest, latest = document["requirements_sha256"], dict(document["latest"])
        valid = document["format"] == _CACHE_FORMAT and isinstance(digest, str)
        valid = valid and all(isinstance(v, str | None) for v in latest.values())
    except FileNotFoundError:
        return None
    except (OSError, LookupError, TypeError, ValueError):
        valid = False
    if not valid:
        logger.warning("dependency cache %s is unreadable or corrupt, ignored", path)
        return None
    return _Snapshot(moment if moment.tzinfo else moment.replace(tzinfo=UTC), digest, latest)


def _write_cache(path: Path, snapshot: _Snapshot) -> None:
    document = {
        "format": _CACHE_FORMAT,
        "checked_at": _iso(snapshot.checked_at),
        "requirements_sha256": snapshot.digest,
        "latest": snapshot.latest,
    }
    atomic_write_text(path, json.dumps(document, indent=2, sort_keys=True) + "\n")


def _fetch(
    requirements_path: Path, fetch_latest: Fetcher | None, deadline: float
) -> tuple[list[Requirement], _Snapshot]:
    """Parse the requirements and fetch their latest versions concurrently (late: ``None``)."""
    requirements, digest = _parse(requirements_path)
    fetch = fetch_latest or functools.partial(fetch_latest_pypi, timeout=max(deadline, 0.1))
    latest: dict[str, str | None] = {canonicalize_name(r.name): None for r in requirements}
    pool = concurrent.futures.ThreadPoolExecutor(_MAX_WORKERS, thread_name_prefix="depcheck-fetch")
    try:
        futures = {pool.submit(fetch, name): name for name in latest}
        done, late = concurrent.futures.wait(futures, timeout=deadline)
        for future in done:
            try:
                latest[futures[future]] = _version(future.result())
            except Exception as exc:  # noqa: BLE001 - a fetcher must never break the check
                logger.info("fetching the latest version of %s failed: %s", futures[future], exc)
        if late:
            logger.info("%d latest version(s) not fetched within %.1f s", len(late), deadline)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # stragglers end on their own
    return requirements, _Snapshot(_now(), digest, latest)


def _report(
    requirements: list[Requirement], snapshot: _Snapshot | None, *, stale: bool, refreshing: bool
) -> DependencyReport:
    rows: list[DependencyRow] = []
    for requirement in requirements:
        installed = installed_version(requirement.name)
        latest = snapshot.latest.get(canonicalize_name(requirement.name)) if snapshot else None
        rows.append(
            {
                "package": requirement.name,
                "required": str(requirement.specifier) or None,
                "installed": installed,
                "latest": latest or "unknown",
                "status": _status(requirement, installed, latest),
            }
        )
    checked_at = _iso(snapshot.checked_at) if snapshot else None
    return {"checked_at": checked_at, "stale": stale, "refreshing": refreshing, "packages": rows}


def refresh_cache(
    requirements_path: PathArg,
    cache_path: PathArg,
    *,
    fetch_latest: Fetcher | None = None,
    deadline: float = 10.0,
) -> DependencyReport:
    """Fetch the latest versions now, write the cache (and its folder), return the report.

    ``fetch_latest(pep503_name) -> version or None`` defaults to PyPI; answers later
    than ``deadline`` seconds are ``"unknown"``. Raises :class:`ConfigError` if a
    requirements file cannot be read, :class:`OSError` if the cache cannot be written.
    """
    requirements, snapshot = _fetch(Path(requirements_path), fetch_latest, deadline)
    _write_cache(Path(cache_path), snapshot)
    return _report(requirements, snapshot, stale=False, refreshing=False)


def get(
    requirements_path: PathArg,
    cache_path: PathArg,
    *,
    max_age_seconds: float = 86400.0,
    retry_unknown_seconds: float = 900.0,
    refresh: bool = True,
    fetch_latest: Fetcher | None = None,
    deadline: float = 10.0,
) -> DependencyReport:
    """The report at once from the cache, refreshing a stale cache in the background.

    The cache is stale when missing, corrupt, made for other requirements, dated in the
    future or older than ``max_age_seconds`` (``retry_unknown_seconds`` when it holds
    unknown versions). With ``refresh`` a stale cache starts a background refresh
    (``fetch_latest`` and ``deadline`` as in :func:`refresh_cache`) unless one already
    runs in this process. A refresh whose cache file cannot be written is served from
    memory. ``checked_at`` is ``None`` when never checked; ``refreshing`` tells whether
    a refresh of this cache runs. Only an unreadable requirements file raises
    (:class:`ConfigError`).
    """
    global _running
    requirements_path, cache_path = Path(requirements_path), Path(cache_path)
    key = os.path.abspath(cache_path)
    requirements, digest = _parse(requirements_path)
    snapshot = _read_cache(cache_path)
    with _lock:
        kept = _unwritten.get(key)
    if kept is not None and (snapshot is None or kept.checked_at > snapshot.checked_at):
        snapshot = kept
    fresh = False
    if snapshot is not None and snapshot.digest == digest:
        unknown = any(snapshot.latest.get(canonicalize_name(r.name)) is None for r in requirements)
        limit = min(max_age_seconds, retry_unknown_seconds) if unknown else max_age_seconds
        fresh = 0 <= (_now() - snapshot.checked_at).total_seconds() <= limit
    with _lock:  # held until _running is set: the thread clears it under the lock
        if refresh and not fresh and _running is None:
            args = (requirements_path, cache_path, fetch_latest, deadline)
            thread = threading.Thread(target=_refresh, args=args, name="depcheck-refresh")
            thread.daemon = True
            try:
                thread.start()
                _running = (thread, key)
            except RuntimeError as exc:  # e.g. during interpreter shutdown
                logger.warning("cannot start the dependency refresh: %s", exc)
        refreshing = _running is not None and _running[1] == key
    return _report(requirements, snapshot, stale=not fresh, refreshing=refreshing)


def _refresh(
    requirements_path: Path, cache_path: Path, fetch_latest: Fetcher | None, deadline: float
) -> None:
    global _running
    try:
        _, snapshot = _fetch(requirements_path, fetch_latest, deadline)
        try:
            _write_cache(cache_path, snapshot)
        except OSError as exc:
            logger.warning("cannot write dependency cache %s (%s), kept in memory", cache_path, exc)
            with _lock:
                _unwritten[os.path.abspath(cache_path)] = snapshot
    except Exception:
        logger.exception("background dependency refresh failed")
    finally:
        with _lock:
            _running = None


def wait_for_refresh(timeout: float | None = None) -> bool:
    """Wait at most ``timeout`` seconds for the background refresh; tell whether it ended."""
    with _lock:
        running = _running
    if running is not None:
        running[0].join(timeout)
    return running is None or not running[0].is_alive()
