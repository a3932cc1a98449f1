"""Data-steward review: a web page to look at uncertain entities and confirm, split or merge them.

Decisions go to the run folder's append-only log (:mod:`matcher.matching.decisions`), which
``matcher run``, ``matcher match`` and ``matcher match-incremental`` enforce, so a fix made
here holds through every later run. ``matcher review --config C --run DIR`` serves the page;
``matcher serve --review`` serves it beside the matching API, on the same web stack.

    state = ReviewState(config, run_folder(config, "output/demo"))
    app = create_review_app(state)          # FastAPI: /review, /review/api/...
"""

from __future__ import annotations

import logging
import os
import secrets

from matcher.config.transform import TransformConfig
from matcher.runtime.errors import ConfigError
from matcher.runtime.run_folder import RunFolder
from matcher.review.state import ReviewState

__all__ = ["ReviewState", "create_review_app", "review_task"]

log = logging.getLogger(__name__)


def create_review_app(state: ReviewState, *, service=None, token: str | None = None, who: str = ""):
    """The review page over ``state``; with a :class:`~matcher.serving.MatchService` the matching API too."""
    from matcher.review.app import review_routes
    from matcher.serving.app import create_app, web_app

    if service is not None:
        app = create_app(service)
    else:
        app, _ = web_app("matcher review", f"Review of the entities in {state.folder.location}")

        @app.get("/health", summary="Liveness")
        async def health() -> dict:
            return {"status": "ok", "run": str(state.folder.location), "decisions": len(state.decisions)}

    review_routes(app, state, token=token, who=who)
    return app


def review_task(
    config: TransformConfig, folder: RunFolder, *, host: str = "127.0.0.1", port: int = 8080, token: str | None = None,
    require_token: bool = False, who: str | None = None, matching: bool = False,
) -> str:
    """Serve the review page of the run in ``folder`` until interrupted; ``matching`` adds ``matcher serve``'s API.

    ``require_token`` without ``token`` makes a random one (printed once in the address)."""
    import uvicorn

    if folder.uri or folder.data_root:
        raise ConfigError(f"{folder.location}: 'matcher review' needs a local run folder (it appends to its decision log)")
    if not folder.summary.exists():
        raise ConfigError(f"{folder.location}: no completed run here (summary.json missing); run 'matcher run' first")
    token = token or os.environ.get("MATCHER_REVIEW_TOKEN") or (secrets.token_urlsafe(16) if require_token else None)
    state = ReviewState(config, folder)
    service = None
    if matching:
        from matcher.serving import MatchService

        service = MatchService.open(config, folder)
    who = who if who is not None else os.environ.get("MATCHER_REVIEWER", os.environ.get("USER", ""))
    app = create_review_app(state, service=service, token=token, who=who)
    address = f"http://{host}:{port}/review" + (f"?token={token}" if token else "")
    print(f"review page: {address}", flush=True)  # the address (and token) goes to the terminal, never to a log file
    log.info("reviewing %d entities to look at, %d decisions logged", len(state.queue()), len(state.decisions))
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    return f"stopped reviewing {folder.location}"
