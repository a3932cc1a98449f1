"""The HTTP API of ``matcher serve``: FastAPI routes over a :class:`~matcher.serving.service.MatchService`.

=======================  ===========================================================================
``POST /match``          one record → its entity (existing ``match_id`` or a new one), confidence,
                         the top candidates with ``match_probability`` and per-comparison weights
``POST /match/batch``    up to 1,000 records, matched independently (none is kept)
``POST /records``        up to 1,000 records matched one after the other, kept and appended to the
                         run folder before the answer
``GET /entities/{id}``   one entity's records and golden record
``GET /health``          liveness and what is loaded; ``GET /metrics``: Prometheus text
``GET /docs``            the OpenAPI page (Swagger UI shipped in the package: works offline)
=======================  ===========================================================================

Bad input gets a 4xx JSON body ``{"error": ..., "field": ...}`` naming the field, never its
value; the service keeps serving. Request bodies are never logged. The routes run on the event
loop itself: the service scores one request at a time anyway (a few milliseconds each), and a
hop to a worker thread would cost more than it saves.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from matcher.runtime.errors import InputDataError
from matcher.serving.metrics import RequestMetrics
from matcher.serving.service import MAX_BATCH, ConflictError, MatchService

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 4 * 1024 * 1024
_ASSETS = "/docs-assets"


class MatchRequest(BaseModel):
    """One record in a source's own schema (``source`` names it) or in the harmonized schema (no ``source``)."""

    record: dict[str, Any]
    source: str | None = None
    top: int = Field(5, ge=0, le=100, description="how many candidates to return")


class BatchRequest(BaseModel):
    """Up to 1,000 records of one source (or harmonized)."""

    records: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)
    source: str | None = None
    top: int = Field(5, ge=0, le=100)


class BodyLimit:
    """Refuses a request body larger than ``limit`` bytes with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(self.limit)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _BodyTooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _BodyTooLarge:
            await _too_large(self.limit)(scope, receive, send)


class Measured:
    """Counts and times every request by route and status; a request that fails answers 500 in JSON
    (the error's type only: messages may carry values) and the service keeps serving."""

    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def sent(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        except Exception as err:  # noqa: BLE001 - one request fails, the service keeps serving
            log.error("%s %s failed: %s", scope["method"], scope["path"], type(err).__name__)
            log.debug("request failure", exc_info=True)
            status[0] = 500
            body = {"error": f"internal error ({type(err).__name__}); nothing was kept", "field": None}
            await JSONResponse(body, status_code=500)(scope, receive, send)
        route = scope.get("route")
        self.metrics.observe(f"{scope['method']} {route.path if route else 'unmatched'}", status[0],
                             time.perf_counter() - started)


class _BodyTooLarge(Exception):
    pass


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"error": f"request body larger than {limit} bytes", "field": "body"}, status_code=413)


def _field(location: tuple | list) -> str:
    return ".".join(str(part) for part in location if part != "body") or "body"


def web_app(title: str, description: str, *, max_body_bytes: int = MAX_BODY_BYTES) -> tuple[FastAPI, RequestMetrics]:
    """The web stack every ``matcher`` page and API shares: the bundled OpenAPI page at ``/docs``, a
    request-size limit, request metrics and JSON errors that name the field; returns the app and its metrics."""
    app = FastAPI(
        title=title,
        description=description,
        version="1",
        docs_url=None,  # served below from the bundled Swagger UI: no CDN, works offline
        redoc_url=None,
    )
    app.mount(_ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{title} API",
                                   swagger_js_url=f"{_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{_ASSETS}/favicon-32x32.png")

    metrics = RequestMetrics()
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    app.add_middleware(Measured, metrics=metrics)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {"loc": ("body",), "msg": "invalid request"}
        return JSONResponse({"error": first["msg"], "field": _field(first["loc"])}, status_code=422)

    @app.exception_handler(InputDataError)
    async def bad_input(request: Request, err: InputDataError) -> JSONResponse:
        return JSONResponse({"error": str(err), "field": getattr(err, "field", None)}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        return JSONResponse({"error": err.detail, "field": None}, status_code=err.status_code)

    return app, metrics


def create_app(service: MatchService, *, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The API over ``service`` (see the module docstring); OpenAPI page at ``/docs``."""
    app, metrics = web_app(
        "matcher",
        f"Real-time matching against the run in {service.run}: the batch's model, threshold and records.",
        max_body_bytes=max_body_bytes,
    )

    @app.exception_handler(ConflictError)
    async def conflict(request: Request, err: ConflictError) -> JSONResponse:
        return JSONResponse({"error": str(err), "field": "records"}, status_code=409)

    @app.post("/match", summary="Match one record (it is not kept)")
    async def match(request: MatchRequest) -> JSONResponse:
        return JSONResponse(service.match([request.record], request.source, request.top)[0])

    @app.post("/match/batch", summary="Match up to 1,000 records, each on its own (none is kept)")
    async def match_batch(request: BatchRequest) -> JSONResponse:
        return JSONResponse({"results": service.match(request.records, request.source, request.top)})

    @app.post("/records", summary="Match, keep and durably append up to 1,000 new records")
    async def add_records(request: BatchRequest) -> JSONResponse:
        return JSONResponse({"results": service.add(request.records, request.source, request.top)})

    @app.get("/entities/{match_id}", summary="One entity's records and golden record")
    async def entity(match_id: str) -> JSONResponse:
        try:
            return JSONResponse(service.entity(match_id))
        except KeyError:
            raise HTTPException(status_code=404, detail=f"no entity has match_id {match_id!r}") from None

    @app.get("/health", summary="Liveness and what is loaded")
    async def health() -> dict[str, Any]:
        return service.health()

    @app.get("/metrics", summary="Request counts and latency histograms (Prometheus text format)")
    async def metrics_text() -> PlainTextResponse:
        return PlainTextResponse(metrics.prometheus(records=len(service.reference)), media_type="text/plain; version=0.0.4")

    return app
