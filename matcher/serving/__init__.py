"""Real-time matching over HTTP: ``matcher serve`` answers "is this record someone we know?" in
milliseconds, from a completed run's model and records, with the batch's own scores.

    service = MatchService.open(config, run_folder(config, "output/demo"))
    service.match([{"first": "Ann", ...}], source="shop")      # or over HTTP: create_app(service)
"""

from __future__ import annotations

import logging

from matcher.config.transform import TransformConfig
from matcher.runtime.errors import ConfigError
from matcher.runtime.run_folder import RunFolder
from matcher.serving.service import MatchService

__all__ = ["MatchService", "create_app", "serve_task"]

log = logging.getLogger(__name__)


def create_app(service: MatchService, **options):
    """The FastAPI application over ``service`` (:func:`matcher.serving.app.create_app`)."""
    from matcher.serving.app import create_app as build

    return build(service, **options)


def serve_task(config: TransformConfig, folder: RunFolder, *, host: str = "127.0.0.1", port: int = 8080) -> str:
    """Serve the run in ``folder`` on ``host:port`` until interrupted (Ctrl-C or SIGTERM)."""
    import uvicorn

    if folder.uri or folder.data_root:
        raise ConfigError(f"{folder.location}: 'matcher serve' needs a local run folder (it appends the records it adds)")
    service = MatchService.open(config, folder)
    log.info("listening on http://%s:%d (API documentation at /docs)", host, port)
    uvicorn.run(create_app(service), host=host, port=port, log_level="warning", access_log=False)
    return f"stopped serving {folder.location}"
