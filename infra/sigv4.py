"""SigV4 for the loopback gateway: verify a request as API Gateway's IAM authorizer would, and sign one.

Verification recomputes the signature with botocore's own signer (canonical
request, string to sign, signing key) over exactly the headers the client
signed, with the client's timestamp, and compares; the access key must be one
of the local credentials. Signing is what `python -m infra sign-request` and
the tests use; `curl --aws-sigv4 "aws:amz:us-east-1:execute-api" --user KEY:SECRET`
produces the same.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SERVICE = "execute-api"
ALGORITHM = "AWS4-HMAC-SHA256"
# API Gateway refuses signatures more than 5 minutes from its clock.
MAX_CLOCK_SKEW = timedelta(minutes=5)
_AUTHORIZATION = re.compile(
    rf"^{ALGORITHM} Credential=(?P<key>[^/]+)/(?P<date>\d{{8}})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,\s*"
    r"SignedHeaders=(?P<headers>[a-z0-9;-]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)


class SignatureError(Exception):
    """The request is not signed, or not signed by a known key, or its signature does not match."""


@dataclass(frozen=True)
class Principal:
    access_key: str
    region: str


def verify(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    secrets: Mapping[str, str],
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Principal:
    """The signer of a request, or SignatureError saying why it is refused. ``headers`` are lower-cased."""
    authorization = headers.get("authorization")
    if not authorization:
        raise SignatureError("Missing Authentication Token")
    match = _AUTHORIZATION.match(authorization.strip())
    if match is None:
        raise SignatureError("Authorization header is not an AWS Signature Version 4 header")
    if match["service"] != SERVICE:
        raise SignatureError(f"Credential should be scoped to correct service: '{SERVICE}'")
    secret = secrets.get(match["key"])
    if secret is None:
        raise SignatureError("The security token included in the request is invalid")
    stamp = headers.get("x-amz-date", "")
    try:
        signed_at = datetime.strptime(stamp, SIGV4_TIMESTAMP).replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError("X-Amz-Date is missing or not of the form YYYYMMDDTHHMMSSZ") from None
    if abs(now() - signed_at) > MAX_CLOCK_SKEW:
        raise SignatureError("Signature expired: X-Amz-Date is more than 5 minutes from the server's clock")
    signed = match["headers"].split(";")
    missing = [name for name in signed if name not in headers]
    if missing or "host" not in signed:
        raise SignatureError(f"signed headers must include host and be present (missing: {missing or ['host']})")
    request = AWSRequest(method=method, url=url, headers={n: headers[n] for n in signed}, data=body)
    request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(match["key"], secret, headers.get("x-amz-security-token")), SERVICE, match["region"])
    # botocore signs these headers whenever they are present; the client's list is the truth here.
    signer.headers_to_sign = lambda _request: request.headers  # type: ignore[method-assign]
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, match["signature"]):
        raise SignatureError(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method."
        )
    return Principal(match["key"], match["region"])


def sign(method: str, url: str, credentials: Credentials, region: str, body: bytes = b"",
         headers: Mapping[str, str] | None = None) -> dict[str, str]:
    """Headers (Authorization, X-Amz-Date, …) that sign the request for execute-api in ``region``."""
    request = AWSRequest(method=method, url=url, headers=dict(headers or {}), data=body)
    SigV4Auth(credentials, SERVICE, region).add_auth(request)
    return dict(request.headers.items())
