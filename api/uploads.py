"""An uploaded file read as the request's body arrives, never spooled to disk first.

werkzeug's form parsing reads the whole body, and writes a large file to a temporary file, before a view sees any
of it. The upload routes read the body themselves with werkzeug's own multipart decoder instead: the fields sent
before the file first, then the file's bytes a chunk at a time, which the check (`shared.intake.plain.scan`) takes
as they come and stores in parts. The file must be the form's last part, as browsers and HTTP libraries send a form
whose file field comes last (S3's form uploads make the same rule); a part after it is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from flask import abort, g, request
from flask_wtf.csrf import CSRFError, validate_csrf
from werkzeug.sansio.multipart import Data, Epilogue, Event, Field, File, MultipartDecoder, NeedData, Preamble
from wtforms import ValidationError

from shared.intake.source import Incoming

CHUNK = 64 * 1024
FIELDS_MAX_BYTES = 64 * 1024  # the fields before the file: a model name and a token
LAST = "send the file as the form's last field (`file`); nothing may follow it"


@dataclass(frozen=True)
class StreamedForm:
    fields: dict[str, str]  # the fields sent before the file (the first value of each name)
    filename: str | None  # None when the form has no `file` part
    body: Incoming  # the file's bytes as they arrive (empty without a file)


# The routes that read their form so; `api.security` leaves their CSRF check to `stream_form`.
ROUTES = frozenset({"api_v1.create_job", "pages.upload"})


def streamed() -> bool:
    """Whether this request's form is read by `stream_form` (not by werkzeug before the view)."""
    return request.endpoint in ROUTES and request.mimetype == "multipart/form-data"


def stream_form() -> StreamedForm:
    """The request's multipart form up to its `file` part, whose bytes are then read as they arrive; without a
    multipart body, a form without a file.

    A browser's form must carry its CSRF token before the file (or in the X-CSRFToken header): checked before a
    byte of the file is read. 400 for a body that cannot be decoded, and (once the file has been read) for a part
    after it.
    """
    boundary = request.mimetype_params.get("boundary")
    if not streamed() or not boundary:
        return StreamedForm({}, None, Incoming(()))
    # The decoder holds at most a chunk beyond what it has handed on, but for a part's headers.
    decoder = MultipartDecoder(boundary.encode("latin-1"), CHUNK + FIELDS_MAX_BYTES, max_parts=100)
    events = _events(decoder)
    fields: dict[str, str] = {}
    size = 0
    for event in events:
        if isinstance(event, File) and event.name == "file":
            _require_csrf(fields)
            return StreamedForm(fields, event.filename, Incoming(_file_data(events)))
        pieces = []
        for piece in _data(events):  # another field, or another file (left out)
            size += len(piece)
            if size > FIELDS_MAX_BYTES:
                abort(413, description=f"the form's fields before the file exceed {FIELDS_MAX_BYTES} bytes")
            pieces.append(piece)
        data = b"".join(pieces)
        if isinstance(event, Field):
            try:
                fields.setdefault(event.name, data.decode())
            except UnicodeDecodeError:
                abort(400, description=f"the form field {event.name!r} is not UTF-8 text")
    _require_csrf(fields)
    return StreamedForm(fields, None, Incoming(()))


def _require_csrf(fields: dict[str, str]) -> None:
    """A bearer token's request carries no cookie a forged page could ride on; a browser's must carry the form's
    CSRF token. flask-wtf's own refusal otherwise."""
    if g.get("via_token"):
        return
    try:
        validate_csrf(fields.get("csrf_token") or request.headers.get("X-CSRFToken"))
    except ValidationError as exc:
        raise CSRFError(exc.args[0]) from None


def _events(decoder: MultipartDecoder) -> Iterator[Event]:
    """The decoder's events as the body arrives (its preamble left out), up to its end; 400 if it stops short."""
    stream = request.stream
    while True:
        try:
            event = decoder.next_event()
        except ValueError as exc:  # the body ended before the form did (a client gone, a truncated request)
            abort(400, description=f"the form could not be read: {exc}")
        if isinstance(event, NeedData):
            decoder.receive_data(stream.read(CHUNK) or None)
        elif isinstance(event, Epilogue):
            return
        elif not isinstance(event, Preamble):
            yield event


def _data(events: Iterator[Event]) -> Iterator[bytes]:
    """The data of the part whose header was the last event."""
    for event in events:
        if not isinstance(event, Data):
            abort(400, description="the form could not be read")
        yield event.data
        if not event.more_data:
            return


def _file_data(events: Iterator[Event]) -> Iterator[bytes]:
    """The file's bytes as they arrive; at their end, 400 if another part follows."""
    yield from _data(events)
    if next(events, None) is not None:
        abort(400, description=LAST)
