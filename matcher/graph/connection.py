"""Connections to a Gremlin endpoint: the local server or Amazon Neptune (TLS, IAM SigV4).

Neptune with IAM authentication wants the WebSocket handshake signed with AWS Signature
Version 4 for the service ``neptune-db``: :func:`neptune_iam_headers` signs a ``GET`` of
the endpoint with botocore and returns the headers gremlinpython sends on connect.
"""

from __future__ import annotations

import logging
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from gremlin_python.driver.driver_remote_connection import DriverRemoteConnection
from gremlin_python.process.anonymous_traversal import traversal

from matcher.config.transform import GraphSpec
from matcher.runtime.errors import GraphError

log = logging.getLogger(__name__)

NEPTUNE_SERVICE = "neptune-db"


class GraphConnectionError(GraphError):
    """The endpoint did not accept a connection (worth retrying: it may be restarting)."""


def neptune_iam_headers(endpoint: str, region: str, credentials: Any = None) -> dict[str, str]:
    """SigV4 headers (``Host``, ``X-Amz-Date``, ``Authorization``, and ``X-Amz-Security-Token``
    for temporary credentials) for the WebSocket handshake to ``endpoint``.

    ``credentials`` are botocore credentials; by default botocore's chain finds them
    (environment, profile, instance or Glue job role). The signature covers the
    ``https`` form of the URL, as Neptune checks it.
    """
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    if credentials is None:
        import botocore.session

        credentials = botocore.session.get_session().get_credentials()
        if credentials is None:
            raise GraphError(f"{endpoint}: IAM signing needs AWS credentials and botocore found none")
        credentials = credentials.get_frozen_credentials()
    parts = urlsplit(endpoint)
    url = urlunsplit(("https", parts.netloc, parts.path or "/gremlin", parts.query, ""))
    request = AWSRequest(method="GET", url=url, data=None)
    request.headers["Host"] = parts.netloc
    SigV4Auth(credentials, NEPTUNE_SERVICE, region).add_auth(request)
    return dict(request.headers.items())


def connect(spec: GraphSpec, *, read_timeout_s: float | None = 120.0) -> DriverRemoteConnection:
    """A remote connection for traversals on ``spec.endpoint`` (pool of one websocket)."""
    options: dict[str, Any] = {"pool_size": 1, "read_timeout": read_timeout_s, "write_timeout": read_timeout_s}
    if spec.iam_region:
        options["headers"] = neptune_iam_headers(spec.endpoint, spec.iam_region)
    if spec.use_tls:
        options["ssl_options"] = ssl.create_default_context()
    parts = urlsplit(spec.endpoint)
    try:  # refused before gremlinpython builds a client it would not close
        socket.create_connection((parts.hostname, parts.port or 8182), timeout=10).close()
    except OSError as err:
        raise GraphConnectionError(f"{spec.endpoint}: cannot connect ({_first_line(err)})") from err
    try:
        return DriverRemoteConnection(spec.endpoint, "g", **options)
    except Exception as err:  # noqa: BLE001 - aiohttp and OS errors differ by platform
        raise GraphConnectionError(f"{spec.endpoint}: cannot connect ({type(err).__name__}: {_first_line(err)})") from err


def probe(endpoint: str, *, timeout_s: float = 5.0) -> bool:
    """True when the endpoint answers ``g.inject(1)`` within ``timeout_s``."""
    parts = urlsplit(endpoint)
    try:  # a closed port is told apart without gremlinpython, which leaves a failed client unclosed
        socket.create_connection((parts.hostname, parts.port or 8182), timeout=timeout_s).close()
    except OSError:
        return False
    try:
        connection = DriverRemoteConnection(endpoint, "g", pool_size=1, read_timeout=timeout_s, write_timeout=timeout_s)
    except Exception:  # noqa: BLE001 - refused, reset, timeout: all mean "not answering"
        return False
    try:
        return traversal().with_remote(connection).inject(1).to_list() == [1]
    except Exception:  # noqa: BLE001
        return False
    finally:
        _close(connection)


def _close(connection: DriverRemoteConnection) -> None:
    try:
        connection.close()
    except Exception:  # noqa: BLE001 - closing a broken socket may fail; nothing to keep
        log.debug("closing the Gremlin connection failed", exc_info=True)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
