"""One database session per request, closed when the request ends."""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from shared.db import database_url, make_engine, make_sessionmaker
from shared.settings import Settings


def init_app(app: Flask, settings: Settings) -> None:
    engine = make_engine(database_url(settings))
    app.extensions["cytoscore.engine"] = engine
    app.extensions["cytoscore.sessions"] = make_sessionmaker(engine)
    app.teardown_appcontext(_close_session)


def db() -> Session:
    if "db" not in g:
        g.db = current_app.extensions["cytoscore.sessions"]()
    return g.db  # type: ignore[no-any-return]


def _close_session(_exc: BaseException | None) -> None:
    """Give the session's connection back. A streamed answer (`stream_with_context`) ends its request's context
    twice: when the view returns, and when the stream does; the session stays in `g` between the two, so what the
    stream reads on it is given back at the second end too."""
    session = g.get("db")
    if session is not None:
        session.close()
