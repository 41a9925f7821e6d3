"""What one worker process holds: a database engine and the verified models, loaded once."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from shared.db import database_url, make_engine, make_sessionmaker
from shared.modelstore import LoadedModel, load_model, verify_models
from shared.settings import Settings, get_settings


@dataclass
class Resources:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    models: dict[str, LoadedModel] = field(default_factory=dict)
    pid: int = field(default_factory=os.getpid)

    def model(self, name: str) -> LoadedModel:
        if name not in self.models:
            self.models[name] = load_model(name, self.settings.models_dir)
        return self.models[name]

    def load_all_models(self) -> list[LoadedModel]:
        """Load and verify every published model, as the web does (`verify_models`); any failure raises
        ModelIntegrityError."""
        loaded = verify_models(self.settings.models_dir)
        self.models.update((m.name, m) for m in loaded)
        return loaded


_current: Resources | None = None


def resources() -> Resources:
    """This process's resources; a forked child gets its own engine (SQLAlchemy: dispose(close=False))."""
    global _current
    if _current is None:
        settings = get_settings()
        # A worker frozen in a transaction (a stopped process, a paused VM) would hold its job's row lock, and the
        # reconciler could never take the job back: its session is ended once its heartbeat is stale.
        engine = make_engine(database_url(settings), stalled_after=settings.heartbeat_stale_after)
        _current = Resources(settings, engine, make_sessionmaker(engine))
    elif _current.pid != os.getpid():
        _current.engine.dispose(close=False)
        _current.pid = os.getpid()
    return _current
