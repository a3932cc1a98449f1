"""IAM SigV4 signing of the Neptune WebSocket handshake, with botocore, a fixed clock and fixed credentials."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timezone

import botocore.auth
from botocore.credentials import Credentials

from matcher.graph.connection import neptune_iam_headers

ENDPOINT = "wss://db.cluster-abc.us-east-1.neptune.amazonaws.com:8182/gremlin"
HOST = "db.cluster-abc.us-east-1.neptune.amazonaws.com:8182"


def expected_signature(secret: str, amz_date: str, region: str, signed: dict[str, str]) -> str:
    """AWS Signature Version 4 computed by hand from the published algorithm (GET, empty body)."""
    names = sorted(signed)
    canonical = "\n".join([
        "GET", "/gremlin", "",
        *[f"{n}:{signed[n]}" for n in names], "",
        ";".join(names), hashlib.sha256(b"").hexdigest(),
    ])
    scope = f"{amz_date[:8]}/{region}/neptune-db/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{secret}".encode()
    for part in (amz_date[:8], region, "neptune-db", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def test_sigv4_headers_for_a_fixed_clock_and_credentials(monkeypatch):
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: datetime(2026, 11, 27, 3, 15, 0, tzinfo=timezone.utc).replace(tzinfo=None))
    headers = neptune_iam_headers(ENDPOINT, "us-east-1", Credentials("AKIDEXAMPLE", "SECRETEXAMPLE"))
    assert set(headers) == {"Host", "X-Amz-Date", "Authorization"}
    assert headers["Host"] == HOST
    assert headers["X-Amz-Date"] == "20261127T031500Z"
    signature = expected_signature("SECRETEXAMPLE", "20261127T031500Z", "us-east-1", {"host": HOST, "x-amz-date": "20261127T031500Z"})
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261127/us-east-1/neptune-db/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={signature}"
    )


def test_temporary_credentials_add_the_security_token(monkeypatch):
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: datetime(2026, 1, 2, 3, 4, 5))
    headers = neptune_iam_headers(ENDPOINT, "eu-west-1", Credentials("AKID", "SECRET", token="TOKEN"))
    assert set(headers) == {"Host", "X-Amz-Date", "Authorization", "X-Amz-Security-Token"}
    assert headers["X-Amz-Security-Token"] == "TOKEN"
    assert "SignedHeaders=host;x-amz-date;x-amz-security-token," in headers["Authorization"]
    assert "/20260102/eu-west-1/neptune-db/aws4_request" in headers["Authorization"]
