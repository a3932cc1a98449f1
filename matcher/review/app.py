"""The review page's routes, on the web stack ``matcher serve`` uses (:func:`matcher.serving.app.web_app`).

=====================================  ===============================================================
``GET /review``                        the queue (``q``, ``show``, ``flag``, ``page``)
``GET /review/entities/{match_id}``    one entity: records, links and their waterfall, golden record
``GET /review/decisions``              the decision log
``GET /review/api/queue``              the queue as JSON; ``GET /review/api/entities/{id}`` one entity
``POST /review/api/decisions``         a decision (confirm, split, merge, match, not_match): 409 when
                                       the entity changed since ``version`` or it contradicts the log
``POST /review/api/decisions/{id}/undo``  undo one decision (it stays in the log, marked undone)
=====================================  ===============================================================

With a token every route asks for it: ``?token=...`` once (it becomes a same-site cookie),
the cookie, or ``Authorization: Bearer ...``. Decisions are accepted as JSON only, which a
page on another site cannot send without the browser's permission.
"""

from __future__ import annotations

import hmac
from importlib.resources import files
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from matcher.review import pages
from matcher.review.state import Action, ReviewConflict, ReviewState

COOKIE = "matcher_review_token"


class DecisionRequest(BaseModel):
    """A steward's decision about one entity."""

    action: str = Field(description="confirm, split, merge, match or not_match")
    match_id: str
    who: str = Field(min_length=1, max_length=200)
    version: str | None = Field(None, description="the entity's version as the page showed it; 409 if it changed since")
    why: str = Field("", max_length=2000)
    moved: list[str] = Field(default_factory=list, description="split: the records to move out")
    other_match_id: str | None = Field(None, description="merge: the other entity")
    records: list[str] = Field(default_factory=list, description="match / not_match: the two records")


class UndoRequest(BaseModel):
    who: str = Field(min_length=1, max_length=200)
    why: str = Field("", max_length=2000)


def _token_of(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.query_params.get("token") or request.cookies.get(COOKIE)


def review_routes(app: FastAPI, state: ReviewState, *, token: str | None = None, who: str = "") -> None:
    """Add the review page and its API to ``app``."""
    router = APIRouter(prefix="/review")
    app.mount(pages.ASSETS, StaticFiles(directory=str(files("matcher.review") / "assets")), name="review-assets")

    @app.middleware("http")
    async def require_token(request: Request, call_next) -> Response:
        if token is None or not request.url.path.startswith("/review") or request.url.path.startswith(pages.ASSETS):
            return await call_next(request)
        given = _token_of(request)
        if given is None or not hmac.compare_digest(given.encode(), token.encode()):
            return JSONResponse({"error": "this review page needs its token: open the address 'matcher review' printed",
                                 "field": "token"}, status_code=401)
        if "token" in request.query_params:  # once: keep it in a cookie and take it out of the address bar
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
            response = RedirectResponse(target, status_code=303)
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
            return response
        return await call_next(request)

    @app.exception_handler(ReviewConflict)
    async def conflict(request: Request, err: ReviewConflict) -> JSONResponse:
        return JSONResponse({"error": str(err), "field": "version"}, status_code=409)

    def _entity_or_404(match_id: str) -> None:
        if match_id not in state.members:
            raise HTTPException(status_code=404, detail=f"no entity has match_id {match_id!r}")

    @router.get("", response_class=HTMLResponse, include_in_schema=False)
    async def queue_page(q: str = "", show: str = "open", flag: str = "any", page: int = 1) -> HTMLResponse:
        return HTMLResponse(pages.queue_page(state, who, q=q, show=show, flag=flag, page=page))

    @router.get("/entities/{match_id}", response_class=HTMLResponse, include_in_schema=False)
    async def entity_page(match_id: str, done: str | None = None) -> Response:
        if match_id not in state.members:
            moved_to = state.entity_of(match_id)  # an id that is also a record id: follow the record
            if moved_to is not None:
                return RedirectResponse(f"/review/entities/{quote(moved_to, safe=':~')}", status_code=303)
            text = f"No entity has match_id {match_id} (a merge may have retired it)."
            return HTMLResponse(pages.message_page(state, who, "Not found", text), status_code=404)
        return HTMLResponse(pages.entity_page(state, match_id, who, done))

    @router.get("/decisions", response_class=HTMLResponse, include_in_schema=False)
    async def decisions_page() -> HTMLResponse:
        return HTMLResponse(pages.decisions_page(state, who))

    @router.get("/api/queue", summary="Entities to review, most uncertain first")
    async def queue(q: str = "", show: str = "open", flag: str = "any", limit: int = 100, offset: int = 0) -> JSONResponse:
        rows = pages.filter_queue(state.queue(), state, q=q, show=show, flag=flag)
        page = rows.iloc[offset:offset + limit]
        return JSONResponse({"total": len(rows), "entities": page.astype(object).where(page.notna(), None).to_dict("records")})

    @router.get("/api/entities/{match_id}", summary="One entity as the review page shows it")
    async def entity(match_id: str) -> dict[str, Any]:
        _entity_or_404(match_id)
        return state.entity(match_id)

    @router.get("/api/decisions", summary="The decision log, oldest first")
    async def decisions() -> dict[str, Any]:
        return {"decisions": [d.as_json() for d in state.decisions]}

    @router.post("/api/decisions", summary="Record a decision about one entity")
    async def decide(request: DecisionRequest) -> dict[str, Any]:
        _entity_or_404(request.match_id)
        decision = state.decide(Action(
            action=request.action, who=request.who, match_id=request.match_id, version=request.version, why=request.why,
            moved=tuple(request.moved), other_match_id=request.other_match_id, records=tuple(request.records),
        ))
        goto = decision.match_id if decision.action in ("split", "merge", "confirm") else state.entity_of(decision.records[0])
        return {"decision": decision.as_json(), "goto": goto}

    @router.post("/api/decisions/{decision_id}/undo", summary="Undo one decision")
    async def undo(decision_id: str, request: UndoRequest) -> dict[str, Any]:
        decision = state.decide(Action(action="undo", who=request.who, why=request.why, undoes=decision_id))
        undone = next(d for d in state.decisions if d.decision_id == decision_id)
        first = (undone.records or undone.moved)[0]
        return {"decision": decision.as_json(), "goto": state.entity_of(first)}

    app.include_router(router)
