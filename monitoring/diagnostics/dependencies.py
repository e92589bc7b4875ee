"""Offline-safe, cached check of the service's dependencies.

For every requirement in ``requirements.txt`` this module reports the package name,
the specifier written in the file, the installed version (read with
:mod:`importlib.metadata`, no subprocess), the latest release on PyPI and a status.

Design
------
* Parsing uses a small regex parser of its own, so ``packaging`` is not a dependency.
* Version comparison follows the PEP 440 ordering (epoch, release, pre, post, dev and
  local segments), see :func:`parse_version`.
* Latest versions are fetched concurrently with an overall deadline; anything not back
  by then (offline, DNS, slow index) is reported as ``"unknown"``.
* :class:`DependencyCache` (and the module-level :func:`get` / :func:`refresh_cache`)
  keeps the fetched versions in a JSON file so a request never waits for the network:
  a stale or missing cache is answered at once from local data while at most one
  background daemon thread per process refreshes it.

Status precedence
-----------------
The first rule that applies wins:

1. ``"not-installed"``: the distribution is not installed.
2. ``"pin-mismatch"``: the installed version does not satisfy an ``==`` / ``===``
   clause of the specifier (other operators such as ``>=`` are not evaluated).
3. ``"unknown"``: the latest version could not be fetched, or it cannot be compared
   with the installed one.
4. ``"outdated"``: installed version < latest version.
5. ``"up-to-date"``: installed version >= latest version.

Cache file format
-----------------
``{"format": 1, "checked_at": "<ISO-8601 UTC>", "requirements_sha256": "<hex>",
"latest": {"<PEP 503 name>": "<version>" | null}}``. Only the latest versions are
cached: the installed versions and the statuses are recomputed on every call, so a
``pip install`` shows up immediately. ``requirements_sha256`` hashes the bytes of the
requirements file and of every file it includes; when it does not match, the cache is
stale (its latest versions are still shown for packages it knows).
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
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypedDict

from monitoring.exceptions import ConfigError
from monitoring.storage.files import atomic_write_text

__all__ = [
    "DEFAULT_PYPI_URL",
    "PYPI_URL_ENV",
    "DependencyCache",
    "DependencyReport",
    "DependencyRow",
    "Requirement",
    "Status",
    "Version",
    "check_dependencies",
    "compare_versions",
    "fetch_latest_pypi",
    "get",
    "installed_version",
    "normalize_name",
    "parse_requirements",
    "parse_version",
    "refresh_cache",
    "wait_for_refresh",
]

logger = logging.getLogger(__name__)

#: Index used by :func:`fetch_latest_pypi` unless overridden.
DEFAULT_PYPI_URL = "https://pypi.org/pypi"
#: Environment variable overriding :data:`DEFAULT_PYPI_URL`.
PYPI_URL_ENV = "MONITORING_PYPI_URL"

#: Largest JSON document accepted from the index (some projects' documents are big).
_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
_CACHE_FORMAT = 1
_UNKNOWN = "unknown"

Status = Literal["up-to-date", "outdated", "not-installed", "pin-mismatch", "unknown"]
Fetcher = Callable[[str], str | None]


class DependencyRow(TypedDict):
    """One package of a dependency report."""

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


# --------------------------------------------------------------------------------------
# Requirements parsing
# --------------------------------------------------------------------------------------

_NAME_RE = re.compile(
    r"^(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*"
    r"(?:\[(?P<extras>[^\]]*)\])?\s*(?P<rest>.*)$"
)
_COMMENT_RE = re.compile(r"(?:^|\s)#.*$")
_INCLUDE_RE = re.compile(r"^(?:-r\s*|--requirement(?:\s*=\s*|\s+))(?P<path>\S.*?)\s*$")
_TRAILING_OPTIONS_RE = re.compile(r"\s+--?[A-Za-z]")
_CLAUSE_RE = re.compile(r"^(?P<op>~=|===|==|!=|<=|>=|<|>)(?P<version>[^\s,;<>=!~]+)$")
_URL_LIKE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_ARCHIVE_SUFFIXES = (".whl", ".zip", ".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tar")


def normalize_name(name: str) -> str:
    """Normalise a project name as PEP 503 does.

    Parameters
    ----------
    name : str
        Project name in any spelling, e.g. ``"Scikit_Learn"``.

    Returns
    -------
    str
        Lower-case name with runs of ``-``, ``_`` and ``.`` replaced by ``-``.
    """
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Requirement:
    """One requirement line, reduced to what the dependency check needs.

    Attributes
    ----------
    name : str
        Project name as spelled in the file.
    specifier : str
        Version specifier without whitespace, e.g. ``"==1.2"`` or ``">=1,<2"``;
        ``""`` when the line has none (also for ``name @ url`` references).
    source : pathlib.Path or None
        File the requirement was read from.
    line : int
        1-based line number in ``source`` (0 when unknown).
    """

    name: str
    specifier: str = ""
    source: Path | None = field(default=None, compare=False)
    line: int = field(default=0, compare=False)

    @property
    def key(self) -> str:
        """PEP 503 normalised name used for lookups."""
        return normalize_name(self.name)

    @property
    def pins(self) -> tuple[tuple[str, str], ...]:
        """The valid ``==`` / ``===`` clauses of the specifier as ``(op, version)``."""
        result: list[tuple[str, str]] = []
        for clause in self.specifier.split(","):
            match = _CLAUSE_RE.match(clause)
            if match and match["op"] in ("==", "==="):
                result.append((match["op"], match["version"]))
        return tuple(result)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join backslash continuations and return ``(first line number, line)`` pairs."""
    result: list[tuple[int, str]] = []
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not buffer:
            start = number
        if raw.endswith("\\") and not raw.lstrip().startswith("#"):
            buffer.append(raw[:-1])
            continue
        buffer.append(raw)
        result.append((start, "".join(buffer)))
        buffer = []
    if buffer:
        result.append((start, "".join(buffer)))
    return result


def _parse_line(line: str, source: Path, number: int) -> Requirement | None:
    """Parse one requirement line (comments and options already removed)."""
    where = f"{source}:{number}"
    line = _TRAILING_OPTIONS_RE.split(line, maxsplit=1)[0].strip()
    lowered = line.lower()
    if (
        _URL_LIKE_RE.match(line)
        or line.startswith((".", "/", "~"))
        or lowered.endswith(_ARCHIVE_SUFFIXES)
    ):
        logger.warning("%s: direct file/URL reference %r is not checked", where, line)
        return None
    match = _NAME_RE.match(line)
    if match is None:
        logger.warning("%s: cannot parse requirement %r, skipped", where, line)
        return None
    name, rest = match["name"], match["rest"].strip()
    if rest.startswith("@"):
        # ``name @ url ; marker``: no version specifier, the URL is not reported.
        return Requirement(name=name, specifier="", source=source, line=number)
    rest = rest.split(";", 1)[0].strip()
    if rest.startswith("(") and rest.endswith(")"):
        rest = rest[1:-1]
    specifier = re.sub(r"\s+", "", rest)
    if specifier and specifier[0] not in "<>=!~":
        logger.warning("%s: cannot parse requirement %r, skipped", where, line)
        return None
    if specifier and not all(_CLAUSE_RE.match(c) for c in specifier.split(",")):
        logger.warning("%s: invalid specifier %r kept as written", where, specifier)
    return Requirement(name=name, specifier=specifier, source=source, line=number)


def _read_requirements(
    path: Path,
    out: dict[str, Requirement],
    visited: set[Path],
    update_digest: Callable[[bytes], object],
) -> None:
    """Parse ``path`` into ``out`` (keyed by PEP 503 name), following includes."""
    try:
        resolved = path.resolve()
    except OSError as exc:  # pragma: no cover - e.g. a symlink loop
        raise ConfigError(f"cannot read requirements file {path}: {exc}") from exc
    if resolved in visited:
        logger.debug("requirements file %s already included, skipped", path)
        return
    visited.add(resolved)
    try:
        data = path.read_bytes()
        text = data.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read requirements file {path}: {exc}") from exc
    update_digest(data)
    update_digest(b"\0")

    for number, raw in _logical_lines(text):
        line = _COMMENT_RE.sub("", raw).strip()
        if not line:
            continue
        if line.startswith("-"):
            include = _INCLUDE_RE.match(line)
            if include is None:
                logger.debug("%s:%d: option line %r ignored", path, number, line)
                continue
            target = include["path"]
            if _URL_LIKE_RE.match(target):
                logger.warning("%s:%d: remote include %r ignored", path, number, target)
                continue
            included = Path(target).expanduser()
            if not included.is_absolute():
                included = path.parent / included
            _read_requirements(included, out, visited, update_digest)
            continue
        requirement = _parse_line(line, path, number)
        if requirement is None:
            continue
        previous = out.get(requirement.key)
        if previous is None:
            out[requirement.key] = requirement
            continue
        # Same project listed twice: keep the first spelling, combine the clauses.
        clauses = [c for c in previous.specifier.split(",") if c]
        clauses += [c for c in requirement.specifier.split(",") if c not in clauses]
        out[requirement.key] = Requirement(
            name=previous.name,
            specifier=",".join(c for c in clauses if c),
            source=previous.source,
            line=previous.line,
        )


def _parse_with_digest(path: str | os.PathLike[str]) -> tuple[list[Requirement], str]:
    """Parse a requirements file and hash the bytes of every file it reads."""
    digest = hashlib.sha256()
    out: dict[str, Requirement] = {}
    _read_requirements(Path(path), out, set(), digest.update)
    return list(out.values()), digest.hexdigest()


def parse_requirements(path: str | os.PathLike[str]) -> list[Requirement]:
    """Parse a pip requirements file.

    Comments and blank lines are skipped, backslash continuations joined, and
    ``-r`` / ``--requirement`` includes followed relative to the including file (a
    file already read is not read again, which also breaks include cycles). Other
    option lines (``--index-url``, ``-c``, ``-e`` ...) and trailing per-requirement
    options (``--hash``) are ignored. Extras and environment markers are dropped
    (markers are not evaluated); direct file/URL references without a name are
    skipped with a warning. A project listed more than once is reported once, at its
    first position, with the specifier clauses combined.

    Parameters
    ----------
    path : str or os.PathLike
        The requirements file.

    Returns
    -------
    list of Requirement
        Requirements in file order (includes expanded in place).

    Raises
    ------
    monitoring.exceptions.ConfigError
        If the file or one of its includes cannot be read or decoded as UTF-8.
    """
    return _parse_with_digest(path)[0]


# --------------------------------------------------------------------------------------
# Versions
# --------------------------------------------------------------------------------------

_VERSION_RE = re.compile(
    r"""
    ^\s*v?
    (?:(?P<epoch>\d+)!)?
    (?P<release>\d+(?:\.\d+)*)
    (?:[-_.]?(?P<pre_l>alpha|a|beta|b|preview|pre|c|rc)[-_.]?(?P<pre_n>\d+)?)?
    (?:-(?P<post_n1>\d+)|[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>\d+)?)?
    (?:[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>\d+)?)?
    (?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?
    \s*$
    """,
    re.VERBOSE | re.IGNORECASE,
)
_PRE_PHASES = {
    "a": 0,
    "alpha": 0,
    "b": 1,
    "beta": 1,
    "c": 2,
    "rc": 2,
    "pre": 2,
    "preview": 2,
}
_PHASE_NAMES = ("a", "b", "rc")

_LocalPart = tuple[int, int, str]
_VersionKey = tuple[
    int,
    tuple[int, ...],
    tuple[int, ...],
    tuple[int, ...],
    tuple[int, ...],
    tuple[_LocalPart, ...],
]


@functools.total_ordering
@dataclass(frozen=True, eq=False)
class Version:
    """A parsed PEP 440 version, ordered as PEP 440 specifies.

    Attributes
    ----------
    epoch : int
        Version epoch (``0`` when absent).
    release : tuple of int
        Release segment as written, e.g. ``(1, 2, 0)``.
    pre : tuple of (int, int) or None
        Pre-release as ``(phase, number)`` with phase 0=a, 1=b, 2=rc.
    post : int or None
        Post-release number.
    dev : int or None
        Development release number.
    local : tuple of (int or str) or None
        Local version label segments.
    """

    epoch: int
    release: tuple[int, ...]
    pre: tuple[int, int] | None = None
    post: int | None = None
    dev: int | None = None
    local: tuple[int | str, ...] | None = None

    @property
    def key(self) -> _VersionKey:
        """Sort key implementing the PEP 440 ordering."""
        release = list(self.release)
        while len(release) > 1 and release[-1] == 0:
            release.pop()
        pre_key: tuple[int, ...]
        if self.pre is not None:
            pre_key = (1, *self.pre)
        elif self.post is None and self.dev is not None:
            pre_key = (0,)  # 1.0.dev0 sorts before 1.0a0
        else:
            pre_key = (2,)
        post_key = (0,) if self.post is None else (1, self.post)
        dev_key = (1,) if self.dev is None else (0, self.dev)
        local_key: tuple[_LocalPart, ...] = ()
        if self.local is not None:
            local_key = tuple(
                (1, part, "") if isinstance(part, int) else (0, 0, part) for part in self.local
            )
        return (self.epoch, tuple(release), pre_key, post_key, dev_key, local_key)

    @property
    def public(self) -> str:
        """Canonical public version string (without the local label)."""
        text = f"{self.epoch}!" if self.epoch else ""
        text += ".".join(str(part) for part in self.release)
        if self.pre is not None:
            text += f"{_PHASE_NAMES[self.pre[0]]}{self.pre[1]}"
        if self.post is not None:
            text += f".post{self.post}"
        if self.dev is not None:
            text += f".dev{self.dev}"
        return text

    def __str__(self) -> str:
        """Return the canonical version string."""
        if self.local is None:
            return self.public
        return self.public + "+" + ".".join(str(part) for part in self.local)

    def __eq__(self, other: object) -> bool:
        """Compare by PEP 440 equality (``1.0 == 1.0.0``)."""
        if not isinstance(other, Version):
            return NotImplemented
        return self.key == other.key

    def __lt__(self, other: object) -> bool:
        """Order by the PEP 440 ordering."""
        if not isinstance(other, Version):
            return NotImplemented
        return self.key < other.key

    def __hash__(self) -> int:
        """Hash consistently with ``__eq__``."""
        return hash(self.key)


def parse_version(text: str) -> Version | None:
    """Parse a PEP 440 version string.

    Alternative spellings accepted by PEP 440 normalisation are understood
    (``1.0-alpha.1``, ``1.0c1``, ``1.0-1``, ``v1.0``, ``1.0.post``, upper case).

    Parameters
    ----------
    text : str
        Version string.

    Returns
    -------
    Version or None
        The parsed version, or ``None`` when ``text`` is not a PEP 440 version.
    """
    match = _VERSION_RE.match(text)
    if match is None:
        return None
    pre: tuple[int, int] | None = None
    if match["pre_l"]:
        pre = (_PRE_PHASES[match["pre_l"].lower()], int(match["pre_n"] or 0))
    post: int | None = None
    if match["post_n1"]:
        post = int(match["post_n1"])
    elif match["post_l"]:
        post = int(match["post_n2"] or 0)
    dev = int(match["dev_n"] or 0) if match["dev_l"] else None
    local: tuple[int | str, ...] | None = None
    if match["local"]:
        local = tuple(
            int(part) if part.isdigit() else part
            for part in re.split(r"[-_.]", match["local"].lower())
        )
    return Version(
        epoch=int(match["epoch"] or 0),
        release=tuple(int(part) for part in match["release"].split(".")),
        pre=pre,
        post=post,
        dev=dev,
        local=local,
    )


def compare_versions(left: str, right: str) -> int | None:
    """Compare two version strings with the PEP 440 ordering.

    Parameters
    ----------
    left, right : str
        Version strings.

    Returns
    -------
    int or None
        ``-1``, ``0`` or ``1`` as ``left`` is lower than, equal to or higher than
        ``right``; ``None`` when either is not a valid PEP 440 version.
    """
    a, b = parse_version(left), parse_version(right)
    if a is None or b is None:
        return None
    return (a > b) - (a < b)


def _satisfies_pin(installed: str, op: str, target: str) -> bool:
    """Tell whether ``installed`` satisfies the clause ``op target`` (== or ===)."""
    if op == "===":
        return installed.strip().lower() == target.strip().lower()
    wildcard = target.endswith(".*")
    wanted = parse_version(target[:-2] if wildcard else target)
    have = parse_version(installed)
    if wanted is None or have is None:
        return installed.strip().lower() == target.strip().lower()
    if wildcard:
        if wanted.pre is None and wanted.post is None and wanted.dev is None:
            size = len(wanted.release)
            padded = have.release + (0,) * max(0, size - len(have.release))
            return have.epoch == wanted.epoch and padded[:size] == wanted.release
        return have.public == wanted.public or have.public.startswith(wanted.public + ".")
    if wanted.local is None:
        # ``==1.0`` matches ``1.0+local``: compare the public parts only.
        return have.key[:-1] == wanted.key[:-1]
    return have == wanted


# --------------------------------------------------------------------------------------
# Installed and latest versions
# --------------------------------------------------------------------------------------


def installed_version(name: str) -> str | None:
    """Return the installed version of a distribution.

    Parameters
    ----------
    name : str
        Distribution name in any PEP 503 spelling.

    Returns
    -------
    str or None
        The version from the distribution's metadata, or ``None`` when it is not
        installed or its metadata is unreadable.
    """
    try:
        version = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # broken metadata on disk
        logger.warning("cannot read metadata of %s: %s", name, exc)
        return None
    return version if isinstance(version, str) and version else None


def fetch_latest_pypi(name: str, *, timeout: float, index_url: str | None = None) -> str | None:
    """Fetch the latest released version of a project from the PyPI JSON API.

    Parameters
    ----------
    name : str
        Project name (normalised per PEP 503 before building the URL).
    timeout : float
        Socket timeout in seconds passed to :func:`urllib.request.urlopen`.
    index_url : str, optional
        Base URL of the JSON API; defaults to the ``MONITORING_PYPI_URL`` environment
        variable, then to ``https://pypi.org/pypi``. The document fetched is
        ``<index_url>/<name>/json``. Only ``http`` and ``https`` URLs are used.

    Returns
    -------
    str or None
        ``info.version`` of the document, or ``None`` on any failure (offline, DNS,
        timeout, HTTP error, oversized or malformed response).
    """
    base = (index_url or os.environ.get(PYPI_URL_ENV) or DEFAULT_PYPI_URL).rstrip("/")
    url = f"{base}/{urllib.parse.quote(normalize_name(name), safe='')}/json"
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        logger.warning("refusing to fetch %s: only http(s) index URLs are allowed", url)
        return None
    request = urllib.request.Request(
        url,
        headers={"Accept": "application/json", "User-Agent": "monitoring-depcheck"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(_MAX_RESPONSE_BYTES + 1)
        if len(body) > _MAX_RESPONSE_BYTES:
            logger.warning("response for %s is too large, ignored", name)
            return None
        document = json.loads(body)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        logger.info("cannot fetch latest version of %s: %s", name, exc)
        return None
    info = document.get("info") if isinstance(document, dict) else None
    version = info.get("version") if isinstance(info, dict) else None
    if not isinstance(version, str) or not version.strip():
        logger.info("no info.version in the index response for %s", name)
        return None
    return version.strip()


def _safe_fetch(fetch: Fetcher, name: str) -> str | None:
    """Call a fetcher, turning exceptions and empty answers into ``None``."""
    try:
        value = fetch(name)
    except Exception as exc:  # noqa: BLE001 - a fetcher must never break the check
        logger.info("fetching latest version of %s failed: %s", name, exc)
        return None
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()


def _fetch_all(
    names: Sequence[str], fetch: Fetcher, *, max_workers: int, deadline: float
) -> dict[str, str | None]:
    """Fetch latest versions concurrently; whatever misses the deadline is ``None``."""
    results: dict[str, str | None] = dict.fromkeys(names)
    if not names:
        return results
    end = time.monotonic() + deadline
    executor = concurrent.futures.ThreadPoolExecutor(
        max_workers=min(max_workers, len(names)), thread_name_prefix="depcheck-fetch"
    )
    try:
        futures = {executor.submit(_safe_fetch, fetch, name): name for name in names}
        done, not_done = concurrent.futures.wait(futures, timeout=max(0.0, end - time.monotonic()))
        for future in done:
            results[futures[future]] = future.result()
        if not_done:
            logger.info(
                "latest version of %d package(s) not fetched within %.1f s",
                len(not_done),
                deadline,
            )
    finally:
        # Do not wait for stragglers: they finish (or time out) on their own.
        executor.shutdown(wait=False, cancel_futures=True)
    return results


def _status(requirement: Requirement, installed: str | None, latest: str | None) -> Status:
    """Apply the status precedence documented in the module docstring."""
    if installed is None:
        return "not-installed"
    if not all(_satisfies_pin(installed, op, v) for op, v in requirement.pins):
        return "pin-mismatch"
    if latest is None:
        return "unknown"
    order = compare_versions(installed, latest)
    if order is None:
        return "up-to-date" if installed.strip() == latest.strip() else "unknown"
    return "outdated" if order < 0 else "up-to-date"


def _build_rows(
    requirements: Sequence[Requirement], latest: dict[str, str | None]
) -> list[DependencyRow]:
    """Build report rows from requirements, current installs and latest versions."""
    rows: list[DependencyRow] = []
    for requirement in requirements:
        have = installed_version(requirement.name)
        newest = latest.get(requirement.key)
        rows.append(
            {
                "package": requirement.name,
                "required": requirement.specifier or None,
                "installed": have,
                "latest": newest if newest is not None else _UNKNOWN,
                "status": _status(requirement, have, newest),
            }
        )
    return rows


def _check_arguments(max_workers: int, deadline: float) -> None:
    if max_workers < 1:
        raise ValueError(f"max_workers must be >= 1, got {max_workers}")
    if not deadline >= 0:
        raise ValueError(f"deadline must be >= 0 seconds, got {deadline}")


def _default_fetcher(deadline: float) -> Fetcher:
    return functools.partial(fetch_latest_pypi, timeout=max(deadline, 0.1))


def check_dependencies(
    requirements_path: str | os.PathLike[str],
    *,
    fetch_latest: Fetcher | None = None,
    max_workers: int = 8,
    deadline: float = 3.0,
) -> list[DependencyRow]:
    """Check every requirement against the installed and the latest versions.

    Parameters
    ----------
    requirements_path : str or os.PathLike
        The requirements file (see :func:`parse_requirements`).
    fetch_latest : callable, optional
        ``fetch_latest(normalised_name) -> version or None``; exceptions it raises
        count as ``None``. Defaults to :func:`fetch_latest_pypi` with ``deadline`` as
        socket timeout.
    max_workers : int, default 8
        Number of concurrent fetches.
    deadline : float, default 3.0
        Seconds after which the call returns; fetches still running are abandoned
        and their packages reported with ``latest == "unknown"``.

    Returns
    -------
    list of DependencyRow
        One ``{"package", "required", "installed", "latest", "status"}`` dict per
        requirement, in file order. ``required`` is ``None`` without a specifier,
        ``installed`` is ``None`` when not installed, ``latest`` is ``"unknown"``
        when not fetched. See the module docstring for the status precedence.

    Raises
    ------
    monitoring.exceptions.ConfigError
        If the requirements file cannot be read.
    ValueError
        If ``max_workers < 1`` or ``deadline < 0``.
    """
    _check_arguments(max_workers, deadline)
    end = time.monotonic() + deadline
    requirements = parse_requirements(requirements_path)
    fetch = fetch_latest if fetch_latest is not None else _default_fetcher(deadline)
    latest = _fetch_all(
        [r.key for r in requirements],
        fetch,
        max_workers=max_workers,
        deadline=max(0.0, end - time.monotonic()),
    )
    return _build_rows(requirements, latest)


# --------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Snapshot:
    """Content of a cache file."""

    checked_at: datetime
    digest: str
    latest: dict[str, str | None]

    def to_json(self) -> dict[str, object]:
        return {
            "format": _CACHE_FORMAT,
            "checked_at": _iso(self.checked_at),
            "requirements_sha256": self.digest,
            "latest": dict(sorted(self.latest.items())),
        }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _now() -> datetime:
    return datetime.now(UTC)


def _snapshot_from_json(data: object) -> _Snapshot | None:
    """Validate a decoded cache document; ``None`` when it is not one."""
    if not isinstance(data, dict) or data.get("format") != _CACHE_FORMAT:
        return None
    checked_at, digest, latest = (
        data.get("checked_at"),
        data.get("requirements_sha256"),
        data.get("latest"),
    )
    if not isinstance(checked_at, str) or not isinstance(digest, str):
        return None
    if not isinstance(latest, dict) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in latest.items()
    ):
        return None
    try:
        moment = datetime.fromisoformat(checked_at)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return _Snapshot(checked_at=moment, digest=digest, latest=dict(latest))


def _read_snapshot(path: Path) -> _Snapshot | None:
    """Read a cache file; missing, unreadable or corrupt files give ``None``."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("cannot read dependency cache %s: %s", path, exc)
        return None
    try:
        snapshot = _snapshot_from_json(json.loads(raw))
    except ValueError:
        snapshot = None
    if snapshot is None:
        logger.warning("dependency cache %s is corrupt, ignored", path)
    return snapshot


class _ProcessState:
    """Process-wide refresh state, guarded by ``lock``.

    At most one background refresh thread runs per process (``thread``, refreshing
    the cache file ``target``). ``unwritten`` keeps refresh results whose cache file
    could not be written, so they still serve later calls.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.target: str | None = None
        self.unwritten: dict[str, _Snapshot] = {}


_state = _ProcessState()


def wait_for_refresh(timeout: float | None = None) -> bool:
    """Wait for the background refresh thread of this process, if any, to finish.

    Meant for tests and for an orderly shutdown.

    Parameters
    ----------
    timeout : float, optional
        Seconds to wait at most; ``None`` waits until it finishes.

    Returns
    -------
    bool
        ``True`` when no background refresh is running any more.
    """
    with _state.lock:
        thread = _state.thread
    if thread is None:
        return True
    thread.join(timeout)
    return not thread.is_alive()


class DependencyCache:
    """Cached, non-blocking dependency report backed by a JSON file.

    Parameters
    ----------
    requirements_path : str or os.PathLike
        The requirements file.
    cache_path : str or os.PathLike
        JSON cache file (created with its folder when first written).
    max_age_seconds : float, default 86400
        Age after which the cached latest versions are stale.
    retry_unknown_seconds : float, default 900
        Shorter maximum age applied when some latest versions could not be fetched
        (e.g. the last check ran offline), so they are retried sooner.
    fetch_latest : callable, optional
        Fetcher passed to :func:`check_dependencies`; defaults to PyPI.
    max_workers : int, default 8
        Concurrent fetches during a refresh.
    deadline : float, default 10.0
        Overall time limit of one refresh's fetches, in seconds.
    """

    def __init__(
        self,
        requirements_path: str | os.PathLike[str],
        cache_path: str | os.PathLike[str],
        *,
        max_age_seconds: float = 86400.0,
        retry_unknown_seconds: float = 900.0,
        fetch_latest: Fetcher | None = None,
        max_workers: int = 8,
        deadline: float = 10.0,
    ) -> None:
        _check_arguments(max_workers, deadline)
        self.requirements_path = Path(requirements_path)
        self.cache_path = Path(cache_path)
        self.max_age_seconds = float(max_age_seconds)
        self.retry_unknown_seconds = float(retry_unknown_seconds)
        self.fetch_latest = fetch_latest
        self.max_workers = max_workers
        self.deadline = float(deadline)
        self._key = os.path.abspath(self.cache_path)

    # -- reading -----------------------------------------------------------------------

    def _load(self) -> _Snapshot | None:
        """Newest of the cache file and an unwritten in-memory refresh result."""
        on_disk = _read_snapshot(self.cache_path)
        with _state.lock:
            in_memory = _state.unwritten.get(self._key)
        candidates = [s for s in (on_disk, in_memory) if s is not None]
        return max(candidates, key=lambda s: s.checked_at) if candidates else None

    def _is_fresh(
        self, snapshot: _Snapshot, digest: str, requirements: Sequence[Requirement]
    ) -> bool:
        if snapshot.digest != digest:
            return False
        age = (_now() - snapshot.checked_at).total_seconds()
        limit = self.max_age_seconds
        if any(snapshot.latest.get(r.key) is None for r in requirements):
            limit = min(limit, self.retry_unknown_seconds)
        return 0 <= age <= limit

    def _is_refreshing(self) -> bool:
        with _state.lock:
            thread = _state.thread
            return thread is not None and thread.is_alive() and _state.target == self._key

    def get(self, *, refresh: bool = True) -> DependencyReport:
        """Return the cached report at once, starting a refresh when it is stale.

        The installed versions and statuses are always computed now; the latest
        versions come from the cache (``"unknown"`` for packages it does not know).
        When the cache is missing, corrupt, older than its maximum age or made for
        another requirements file, ``stale`` is ``True`` and, if ``refresh`` is
        set, a background daemon thread is started to refresh it unless one is
        already running in this process (only one runs per process, whatever the
        cache file; a stale cache whose refresh could not start is refreshed by a
        later call).

        Parameters
        ----------
        refresh : bool, default True
            Whether a stale cache may start a background refresh.

        Returns
        -------
        DependencyReport
            ``{"checked_at": str or None, "stale": bool, "refreshing": bool,
            "packages": list of DependencyRow}``; ``checked_at`` is the ISO-8601 UTC
            time the cached latest versions were fetched (``None`` if never) and
            ``refreshing`` tells whether a refresh of this cache is running.

        Raises
        ------
        monitoring.exceptions.ConfigError
            If the requirements file cannot be read. Cache and network problems are
            never raised.
        """
        requirements, digest = _parse_with_digest(self.requirements_path)
        snapshot = self._load()
        fresh = snapshot is not None and self._is_fresh(snapshot, digest, requirements)
        refreshing = self.start_refresh() if refresh and not fresh else False
        refreshing = refreshing or self._is_refreshing()
        return {
            "checked_at": _iso(snapshot.checked_at) if snapshot else None,
            "stale": not fresh,
            "refreshing": refreshing,
            "packages": _build_rows(requirements, snapshot.latest if snapshot else {}),
        }

    # -- refreshing --------------------------------------------------------------------

    def _compute(self) -> tuple[_Snapshot, list[Requirement]]:
        requirements, digest = _parse_with_digest(self.requirements_path)
        fetch = self.fetch_latest or _default_fetcher(self.deadline)
        latest = _fetch_all(
            [r.key for r in requirements],
            fetch,
            max_workers=self.max_workers,
            deadline=self.deadline,
        )
        return _Snapshot(checked_at=_now(), digest=digest, latest=latest), requirements

    def _store(self, snapshot: _Snapshot) -> None:
        atomic_write_text(
            self.cache_path, json.dumps(snapshot.to_json(), indent=2, sort_keys=True) + "\n"
        )
        with _state.lock:
            _state.unwritten.pop(self._key, None)

    def refresh(self) -> DependencyReport:
        """Fetch the latest versions now, write the cache and return the report.

        Blocks for up to ``deadline`` seconds; meant for the CLI.

        Returns
        -------
        DependencyReport
            The new report (``stale`` and ``refreshing`` are ``False``).

        Raises
        ------
        monitoring.exceptions.ConfigError
            If the requirements file cannot be read.
        OSError
            If the cache file cannot be written.
        """
        snapshot, requirements = self._compute()
        self._store(snapshot)
        return {
            "checked_at": _iso(snapshot.checked_at),
            "stale": False,
            "refreshing": False,
            "packages": _build_rows(requirements, snapshot.latest),
        }

    def start_refresh(self) -> bool:
        """Start a background refresh unless one is already running in this process.

        Returns
        -------
        bool
            ``True`` when a refresh of this cache is now running (started by this
            call or earlier), ``False`` when another cache's refresh occupies the
            single background slot.
        """
        with _state.lock:
            if _state.thread is not None and _state.thread.is_alive():
                return _state.target == self._key
            thread = threading.Thread(
                target=self._refresh_in_background,
                name="depcheck-refresh",
                daemon=True,
            )
            _state.thread, _state.target = thread, self._key
            try:
                thread.start()
            except RuntimeError as exc:  # e.g. during interpreter shutdown
                logger.warning("cannot start dependency refresh: %s", exc)
                _state.thread = _state.target = None
                return False
        return True

    def _refresh_in_background(self) -> None:
        try:
            snapshot, _ = self._compute()
            try:
                self._store(snapshot)
            except OSError as exc:
                logger.warning(
                    "cannot write dependency cache %s (%s); kept in memory",
                    self.cache_path,
                    exc,
                )
                with _state.lock:
                    _state.unwritten[self._key] = snapshot
        except Exception:
            logger.exception("background dependency refresh failed")
        finally:
            with _state.lock:
                if _state.thread is threading.current_thread():
                    _state.thread = _state.target = None


def get(
    requirements_path: str | os.PathLike[str],
    cache_path: str | os.PathLike[str],
    *,
    max_age_seconds: float = 86400.0,
    refresh: bool = True,
    retry_unknown_seconds: float = 900.0,
    fetch_latest: Fetcher | None = None,
    max_workers: int = 8,
    deadline: float = 10.0,
) -> DependencyReport:
    """Return the cached dependency report at once; see :meth:`DependencyCache.get`.

    Parameters
    ----------
    requirements_path : str or os.PathLike
        The requirements file.
    cache_path : str or os.PathLike
        JSON cache file.
    max_age_seconds : float, default 86400
        Age after which the cache is stale.
    refresh : bool, default True
        Whether a stale cache may start a background refresh.
    retry_unknown_seconds : float, default 900
        Maximum age of a cache holding versions that could not be fetched.
    fetch_latest : callable, optional
        Fetcher used by the background refresh; defaults to PyPI.
    max_workers : int, default 8
        Concurrent fetches during a refresh.
    deadline : float, default 10.0
        Time limit of a refresh's fetches, in seconds.

    Returns
    -------
    DependencyReport
        ``{"checked_at", "stale", "refreshing", "packages"}``.
    """
    cache = DependencyCache(
        requirements_path,
        cache_path,
        max_age_seconds=max_age_seconds,
        retry_unknown_seconds=retry_unknown_seconds,
        fetch_latest=fetch_latest,
        max_workers=max_workers,
        deadline=deadline,
    )
    return cache.get(refresh=refresh)


def refresh_cache(
    requirements_path: str | os.PathLike[str],
    cache_path: str | os.PathLike[str],
    *,
    fetch_latest: Fetcher | None = None,
    max_workers: int = 8,
    deadline: float = 10.0,
) -> DependencyReport:
    """Refresh the cache now (blocking); see :meth:`DependencyCache.refresh`.

    Parameters
    ----------
    requirements_path : str or os.PathLike
        The requirements file.
    cache_path : str or os.PathLike
        JSON cache file to write.
    fetch_latest : callable, optional
        Fetcher; defaults to PyPI.
    max_workers : int, default 8
        Concurrent fetches.
    deadline : float, default 10.0
        Time limit of the fetches, in seconds.

    Returns
    -------
    DependencyReport
        The new report.
    """
    cache = DependencyCache(
        requirements_path,
        cache_path,
        fetch_latest=fetch_latest,
        max_workers=max_workers,
        deadline=deadline,
    )
    return cache.refresh()
