"""The pages' browser side: the bundled plotly.js, and headless Chromium printing pages.

:func:`plotly_js_path` finds ``plotly.min.js`` in the installed ``plotly`` package
(without importing it): the dashboard serves it, ``report.html`` inlines it.

:class:`Chromium` starts the browser with ``--remote-debugging-pipe`` (the protocol's
JSON messages, each ended by a NUL byte, on the browser's file descriptors 3 and 4) and
a first page that loads the given scripts. Started before a command's own imports,
Chromium's start and the compilation of plotly.js (about 1.2 s of the ~2.5 s a cold
``--print-to-pdf`` takes here) happen while Python loads pandas and scikit-learn; the
report page, loading the same script file, then finds it compiled. :meth:`Chromium.load`
sends the page and returns at once, so the other report files are written while the
page draws; :meth:`Chromium.pdf` waits until the page says its charts are drawn
(``document.body.dataset.charts``) and prints it.

This module uses only the standard library: the command line imports it before the
heavy libraries, to start Chromium first.
"""

from __future__ import annotations

import base64
import fcntl
import functools
import importlib.util
import json
import logging
import os
import select
import shutil
import signal
import tempfile
import time
import weakref
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from monitoring.exceptions import MonitoringError

log = logging.getLogger(__name__)
PRINT_SECONDS = 60.0  # the page gets this long, from load() to its PDF
STOP_SECONDS = 5.0
POLL_SECONDS = 0.02
NO_CHROMIUM = (
    "Chromium was not found, so this PDF is a plain summary; install chromium (or set "
    "MONITORING_CHROMIUM) for the full report with its charts and tables."
)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-extensions",
    "--disable-sync",
    "--no-first-run",
    "--allow-file-access-from-files",
    "--remote-debugging-pipe",
)
# Ready when the page at ``href`` has loaded and its script has set data-charts.
READY = (
    "(location.href === {href} && document.readyState === 'complete' && "
    "document.body && document.body.dataset.charts) || ''"
)


@functools.cache
def plotly_js_path() -> Path:
    """``plotly.min.js`` inside the installed ``plotly`` package (not imported)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise MonitoringError(
            "the plotly package is not installed; pip install -r requirements.txt"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "package_data" / "plotly.min.js"


class PrintError(RuntimeError):
    """Chromium did not print the page; the message says why."""


def find_chromium() -> str | None:
    """The Chromium to print with: ``$MONITORING_CHROMIUM``, else one on ``PATH``."""
    named = os.environ.get("MONITORING_CHROMIUM")
    if named is not None:  # empty: print no PDF with Chromium
        return shutil.which(named) if named else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _high(fd: int) -> int:
    """``fd`` moved to a number >= 10, close-on-exec: mapping it to 3 or 4 neither
    clobbers the other nor is a no-op that leaves it closed on exec."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class _Process:
    """A child started by :func:`os.posix_spawn` (which, unlike :mod:`subprocess`, can
    give it the pipe ends as fds 3 and 4 without a ``preexec_fn``, unsafe in a process
    with threads such as a web worker)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere
                self.returncode = -1
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float) -> int | None:
        """The exit code, or ``None`` if it still runs after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.wait(STOP_SECONDS)


def _stop(process: _Process, scratch: tempfile.TemporaryDirectory[str]) -> None:
    """Kill the browser if it still runs, and remove its scratch folder."""
    process.kill()
    scratch.cleanup()


class Chromium:
    """A headless Chromium to print pages with; started on creation.

    Parameters
    ----------
    executable : str
        The browser (see :func:`find_chromium`).
    preload : sequence of str
        Script URLs its first page loads, so the printed page finds them compiled.
    """

    def __init__(self, executable: str, *, preload: Sequence[str] = ()) -> None:
        self.scratch = tempfile.TemporaryDirectory(prefix="monitoring-print-")
        self.root = Path(self.scratch.name)
        first = self.root / "preload.html"
        tags = "".join(f'<script src="{escape(url)}"></script>' for url in preload)
        first.write_text(f"<!doctype html><html><body>{tags}</body></html>", encoding="utf-8")
        log_fd = os.open(self.root / "chromium.log", os.O_WRONLY | os.O_CREAT, 0o600)
        theirs_in, ours_out = (_high(fd) for fd in os.pipe())  # we write, it reads fd 3
        ours_in, theirs_out = (_high(fd) for fd in os.pipe())  # it writes fd 4, we read
        argv = [executable, *FLAGS, f"--user-data-dir={self.root / 'profile'}", first.as_uri()]
        try:
            pid = os.posix_spawn(
                executable,
                argv,
                os.environ,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                    (os.POSIX_SPAWN_DUP2, log_fd, 2),
                    (os.POSIX_SPAWN_DUP2, theirs_in, 3),
                    (os.POSIX_SPAWN_DUP2, theirs_out, 4),
                ],
            )
        except BaseException:
            for fd in (ours_out, ours_in):
                os.close(fd)
            self.scratch.cleanup()
            raise
        finally:
            for fd in (log_fd, theirs_in, theirs_out):
                os.close(fd)
        self.process = _Process(pid)
        self._in, self._out = ours_in, ours_out
        self._buffer = b""
        self._next_id = 0
        self._session: str | None = None
        self._page: str | None = None
        self._deadline = 0.0
        self._finalizer = weakref.finalize(self, _stop, self.process, self.scratch)

    # -- the protocol ----------------------------------------------------------------
    def _send(self, method: str, params: dict[str, Any] | None = None) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if self._session is not None:
            message["sessionId"] = self._session
        data = json.dumps(message).encode() + b"\0"
        try:
            while data:
                data = data[os.write(self._out, data) :]
        except OSError as exc:
            raise PrintError(f"chromium stopped ({self._last_words()})") from exc
        return self._next_id

    def _receive(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise PrintError(f"chromium took over {PRINT_SECONDS:.0f} s")
            readable, _, _ = select.select([self._in], [], [], left)
            if not readable:
                continue
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise PrintError(f"chromium stopped ({self._last_words()})")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        answer: dict[str, Any] = json.loads(message)
        return answer

    def _call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a command and wait for its answer (events meanwhile are dropped)."""
        wanted = self._send(method, params)
        while True:
            message = self._receive()
            if message.get("id") != wanted:
                continue
            if "error" in message:
                raise PrintError(f"chromium: {method}: {message['error'].get('message')}")
            result: dict[str, Any] = message.get("result", {})
            return result

    def _last_words(self) -> str:
        lines = (self.root / "chromium.log").read_text(errors="replace").strip().splitlines()
        code = self.process.poll()
        return lines[-1] if lines else f"exit {code}" if code is not None else "no answer"

    # -- printing --------------------------------------------------------------------
    def load(self, html: str) -> None:
        """Show ``html`` (written to the scratch folder, so relative and ``file:`` URLs
        resolve) in the browser's page; returns without waiting for it to draw."""
        self._deadline = time.monotonic() + PRINT_SECONDS
        page = self.root / "report-print.html"
        page.write_text(html, encoding="utf-8")
        self._page = page.as_uri()
        if self._session is None:
            targets = self._call("Target.getTargets")["targetInfos"]
            pages = [t["targetId"] for t in targets if t["type"] == "page"]
            if not pages:
                raise PrintError("chromium has no page to print in")
            attached = self._call("Target.attachToTarget", {"targetId": pages[0], "flatten": True})
            self._session = attached["sessionId"]
        navigated = self._call("Page.navigate", {"url": self._page})
        if navigated.get("errorText"):
            raise PrintError(f"chromium could not open the page: {navigated['errorText']}")

    def pdf(self) -> bytes:
        """The loaded page as a PDF (A4, as its CSS asks), once its charts are drawn."""
        if self._page is None:
            raise PrintError("no page was loaded")
        ready = READY.format(href=json.dumps(self._page))
        while True:
            try:
                answer = self._call("Runtime.evaluate", {"expression": ready})
            except PrintError as exc:
                if "context" not in str(exc).lower():  # not just the page being replaced
                    raise
                answer = {}
            if answer.get("result", {}).get("value"):
                break
            time.sleep(POLL_SECONDS)
        # Untagged: a tagged PDF (Chromium's default) is 5x the size and takes longer
        # to print; report.html is the accessible form of the report.
        printed = self._call(
            "Page.printToPDF",
            {
                "printBackground": True,
                "preferCSSPageSize": True,
                "displayHeaderFooter": False,
                "generateTaggedPDF": False,
            },
        )
        data = base64.b64decode(printed["data"])
        if not data.startswith(b"%PDF"):
            raise PrintError("chromium printed no PDF")
        return data

    def close(self) -> None:
        """Stop the browser (politely, then by force) and remove its scratch folder."""
        if self.process.poll() is None:
            self._session = None
            self._deadline = time.monotonic() + STOP_SECONDS
            try:
                self._send("Browser.close")
            except PrintError:
                pass
            self.process.wait(STOP_SECONDS)
        for fd in (self._in, self._out):
            try:
                os.close(fd)
            except OSError:
                pass
        self._in = self._out = -1
        self._finalizer()

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def launch(preload: Sequence[str] | None = None) -> Chromium | str:
    """A started :class:`Chromium` (its first page loading ``preload``, by default
    plotly.js), or why there is none (a note for the plain PDF)."""
    if preload is None:
        preload = [plotly_js_path().as_uri()]
    executable = find_chromium()
    if executable is None:
        return NO_CHROMIUM
    try:
        return Chromium(executable, preload=preload)
    except OSError as exc:
        log.warning("report.pdf falls back to a plain summary: %s", exc)
        return f"Chromium could not be started ({exc}), so this PDF is a plain summary."
