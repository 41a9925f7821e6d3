"""The OpenAPI 3.1 document of /api/v1, made by spectree from the handlers' own pydantic models (`api.schemas`).

spectree's decorator would also wrap each handler to validate it, buffering every answer (a 1M-row CSV export
whole in memory) and answering its own 422s; `Documented.validate` keeps only what it records for the document
and returns the handler untouched. The handlers read their query strings with the same models.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from spectree import Response, SpecTree

from api import schemas

F = TypeVar("F", bound=Callable[..., Any])
_GENERATING = threading.Lock()  # one document at a time: each swaps the shared spec's models for a copy
CSV, XLSX = "text/csv", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class Documented(SpecTree):
    """A SpecTree that documents handlers without wrapping them."""

    def validate(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        files: Mapping[str, tuple[str, ...]] = kwargs.pop("files", {})

        def record(handler: F) -> F:
            kwargs.setdefault("operation_id", handler.__name__)
            kwargs["skip_validation"] = True
            wrapper = super(Documented, self).validate(*args, **kwargs)(handler)
            metadata = self._function_metadata[wrapper]
            self._function_metadata[handler] = metadata
            self.files[handler.__name__] = files
            return handler

        return record

    def _generate_spec(self) -> dict[str, Any]:
        """spectree's, from a copy of the models: its own moves each model's nested schemas (`$defs`) out of
        `self.models` as it goes, so every document after the first referred to schemas it no longer had."""
        with _GENERATING:
            models = self.models
            self.models = copy.deepcopy(models)
            try:
                made: dict[str, Any] = super()._generate_spec()
            finally:
                self.models = models
        return made

    @property
    def files(self) -> dict[str, Mapping[str, tuple[str, ...]]]:
        """Per handler: status code -> the file types it may answer with besides JSON."""
        files: dict[str, Mapping[str, tuple[str, ...]]] = self.__dict__.setdefault("_files", {})
        return files


spec = Documented(
    "flask",
    mode="strict",
    title="cytoscore API",
    version="1",
    openapi_version="3.1.0",
    path="apidoc-unused",  # spectree skips rules under its own path; nothing is registered there
    validation_error_model=schemas.Problems,
    naming_strategy=lambda model: model.__name__,
    description=(
        "Scores breast FNA cell-nucleus measurements. Decision support only: this is not a diagnosis. "
        "Every call needs `Authorization: Bearer <token>`; see docs/api.md."
    ),
)


def errors(*codes: int) -> dict[str, Any]:
    return {f"HTTP_{code}": schemas.Error for code in codes}


def responses(**codes: Any) -> Response:
    """The documented answers: the given ones, and the errors every call may give (401, 429)."""
    return Response(**errors(401, 429), **codes)


# What a created job's id leads to (OpenAPI links: programs and schemathesis' stateful tests follow them).
JOB_LINKS = {
    name: {"operationId": name, "parameters": {"job_id": "$response.body#/id"}}
    for name in ("get_job", "get_results", "get_errors")
}
LINKED = {"create_job": ("201", "202")}


def document() -> dict[str, Any]:
    """The document, for the app in context: bearer auth on every operation, file answers where there are some."""
    made = spec._generate_spec()  # afresh each time: cheap, and never stale after a test's second app
    made["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    made["security"] = [{"bearer": []}]
    for operations in made["paths"].values():
        for operation in operations.values():
            for code in LINKED.get(operation["operationId"], ()):
                operation["responses"][code]["links"] = JOB_LINKS
            for code, types in spec.files.get(operation["operationId"], {}).items():
                content = operation["responses"].setdefault(code, {"description": "file"}).setdefault("content", {})
                for media in types:
                    content[media] = {"schema": {"type": "string", "contentMediaType": media}}
    return made
