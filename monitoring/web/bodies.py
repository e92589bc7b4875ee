"""Reading request bodies safely: JSON that is too deep or not Unicode, and bodies
that cannot be read at all (a malformed chunked encoding, a client gone mid-body).

Each becomes a 400 in the one error shape instead of an exception deep in a view.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import BadRequest, ClientDisconnected, HTTPException

from monitoring.data.payloads import loads_json
from monitoring.exceptions import BadRequestError


class UnreadableJSON(BadRequest):
    """A JSON body that parses but cannot be taken: nested too deeply, lone surrogates.

    Not a :class:`ValueError`, so ``request.get_json(silent=True)`` does not turn it
    into "not valid JSON": the client learns what was wrong.
    """


class UnreadableBody(BadRequest):
    """The request body could not be read (its framing is broken or the client left)."""


class RequestJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, with request bodies parsed by
    :func:`~monitoring.data.payloads.loads_json`."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        if kwargs:
            return super().loads(s, **kwargs)
        try:
            return loads_json(s)
        except BadRequestError as exc:  # a ValueError: would read as "not valid JSON"
            raise UnreadableJSON(exc.message) from None


class GuardedInput:
    """``wsgi.input`` whose read errors (other than HTTP errors) become
    :class:`UnreadableBody`, and whose end before ``Content-Length`` bytes a
    :class:`~werkzeug.exceptions.ClientDisconnected`.

    gunicorn parses a chunked body while the app reads it, and raises its own
    exceptions for a bad chunk size or a missing terminator; a client that goes away
    mid-body raises :class:`OSError`, or (having only stopped sending) ends the body
    short, which gunicorn passes on as a shorter body.
    """

    def __init__(self, stream: Any, expected: int | None = None) -> None:
        self._stream = stream
        self._expected = expected
        self._received = 0

    def _guard(self, call: Callable[[], Any], *, to_the_end: bool) -> Any:
        try:
            data = call()
        except HTTPException:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the server's reader raises
            detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            raise UnreadableBody(f"request body could not be read: {detail}") from None
        size = sum(map(len, data)) if isinstance(data, list) else len(data)
        self._received += size
        expected = self._expected
        if expected is not None and self._received < expected and (to_the_end or not size):
            raise ClientDisconnected()
        return data

    def read(self, size: int | None = -1) -> bytes:
        to_the_end = size is None or size < 0
        return self._guard(lambda: self._stream.read(size), to_the_end=to_the_end and size != 0)

    def readline(self, size: int | None = -1) -> bytes:
        return self._guard(lambda: self._stream.readline(size), to_the_end=False)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        to_the_end = hint is None or hint <= 0
        return self._guard(lambda: self._stream.readlines(hint), to_the_end=to_the_end)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


def _content_length(environ: dict[str, Any]) -> int | None:
    try:
        length = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None
    return length if length >= 0 else None


def guard_body(wsgi_app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """WSGI middleware: the app reads the body through a :class:`GuardedInput`."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        stream = environ.get("wsgi.input")
        if stream is not None:
            environ["wsgi.input"] = GuardedInput(stream, _content_length(environ))
        return wsgi_app(environ, start_response)

    return app
