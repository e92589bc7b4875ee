"""The gunicorn worker class: gthread, with no thread spent on a client still sending headers.

gunicorn's ``gthread`` worker hands every new connection to a thread, which waits up to
5 s for the request and then reads its headers with blocking calls. A hundred idle
sockets therefore held every thread for seconds, and a client sending its headers a
byte a second held one for as long as it liked. :class:`HeaderBufferingWorker` keeps
such connections in the worker's poller instead: it reads what arrives (without
blocking) until the header block is complete, and only then gives the connection to a
thread, which parses the buffered bytes first. A connection whose headers are not
complete within :data:`HEADER_SECONDS` of its first wait is closed, as nginx's
``client_header_timeout`` does. Kept-alive connections go through the same door for
their next request. Bodies are read by the thread as before (the body size limit,
``api.max_content_length``, bounds them). The errors gunicorn answers itself, before
the app sees a request (a malformed request line, too long a URI, too many or too large
header fields), use the API's JSON error shape instead of an HTML page.

It relies on gunicorn's gthread internals (``pending_conns``, ``TConn``), so
``requirements.txt`` pins gunicorn and ``tests/e2e/test_hostile_clients.py`` holds the
behaviour; HTTPS terminated by gunicorn itself is left to the plain gthread path.
"""

from __future__ import annotations

import errno
import json
import os
import selectors
import time
from collections import deque
from functools import partial
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import TConn, ThreadWorker

HEADER_SECONDS = float(os.environ.get("GUNICORN_HEADER_TIMEOUT", "10"))
HEADER_END = b"\r\n\r\n"
READ_CHUNK = 16 << 10
PARKED_BYTES = 32 << 10  # at most this much of a header block waits in the event loop


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's own error answers (400, 414, 431, 501, ...) in the API's JSON error shape.

    Replaces ``gunicorn.util.write_error``, which writes an HTML page, in the workers of
    this class; the message is gunicorn's, cut to 200 characters.
    """
    body = json.dumps({"error": reason, "message": mesg[:200], "status": status_int}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


class HeaderBufferingWorker(ThreadWorker):
    """A gthread worker that commits a thread to a connection only once its headers are in."""

    def init_process(self) -> None:
        util.write_error = write_json_error  # this process's gunicorn errors are JSON
        self.header_conns: deque[Any] = deque()  # sorted by deadline: all wait the same time
        # Bytes kept per waiting connection: past this a thread takes over (gunicorn's
        # own limits then apply), so waiting connections hold at most
        # worker_connections x 32 KiB.
        self.header_limit = PARKED_BYTES
        super().init_process()

    def accept(self, listener: Any) -> None:
        if self.cfg.is_ssl:
            super().accept(listener)
            return
        try:
            sock, client = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        self._wait_for_headers(TConn(self.cfg, sock, client, listener.getsockname()))

    def on_client_socket_readable(self, conn: Any, client: Any) -> None:
        """A kept-alive connection's next request starts: wait for its headers too."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        if self.cfg.is_ssl or conn.parser.unreader.buf.getvalue():
            self.enqueue_req(conn)
            return
        self._wait_for_headers(conn)

    def _wait_for_headers(self, conn: Any) -> None:
        conn.sock.setblocking(False)
        conn.early = b""
        conn.timeout = time.monotonic() + HEADER_SECONDS
        self.header_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_header_bytes, conn))

    def _on_header_bytes(self, conn: Any, client: Any) -> None:
        try:
            data = conn.sock.recv(READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away before sending a request
            self._drop(conn)
            return
        conn.early += data
        if HEADER_END in conn.early or len(conn.early) > self.header_limit:
            self.poller.unregister(conn.sock)
            self.header_conns.remove(conn)
            conn.data_ready = True  # no further wait in the thread
            self.enqueue_req(conn)  # the parser answers an oversized block with 431

    def _drop(self, conn: Any) -> None:
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        self.header_conns.remove(conn)
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        while self.header_conns and self.header_conns[0].timeout <= now:
            self._drop(self.header_conns[0])

    def handle(self, conn: Any) -> Any:
        early = getattr(conn, "early", None)
        if early:
            conn.early = None
            conn.init()  # a new connection's parser (a kept-alive one has its own)
            conn.parser.unreader.unread(early)
        return super().handle(conn)
