"""AWS IAM login: the client signs an STS `GetCallerIdentity` request with its own credentials
and hands us the signed request (never the credentials); we send it to STS, and STS tells us
whose signature it carries. The pattern of Vault's AWS auth method.

Everything in the request is hostile until checked. It must be exactly a `GetCallerIdentity`
POST: we send our own body, to `/` of an STS endpoint its signed `Host` names (or the local
mode's STS), so the client never chooses where we connect or what we ask. Its signed
`X-Berth-Server-ID` header must name this registry, so that a request signed for another
service, replayed here, is refused (and one signed for us, replayed elsewhere, names us). Its
`X-Amz-Date` bounds its age as STS does, and the forwarded headers are exactly the signed ones.
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from chalicelib.auth.federation import Refused, json_object

SERVER_ID_HEADER = "X-Berth-Server-ID"
STS_BODY = "Action=GetCallerIdentity&Version=2011-06-15"
CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
PREFIX = "berth-aws-v1."
MAX_AGE_SECONDS = 15 * 60  # STS's own limit on a signature's age
MAX_AHEAD_SECONDS = 5 * 60  # clock skew tolerated the other way
MAX_LENGTH = 8 * 1024
STS_TIMEOUT_SECONDS = 5
MAX_ANSWER_BYTES = 64 * 1024

_REGION = r"[a-z]{2}(?:-[a-z]+)+-\d"
_STS_HOST = re.compile(rf"^sts\.amazonaws\.com\Z|^sts\.({_REGION})\.amazonaws\.com(\.cn)?\Z")
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=([A-Z0-9]{16,128})/(\d{8})/([a-z0-9-]+)/sts/aws4_request, "
    r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})\Z")
_REQUIRED = frozenset({"host", "x-amz-date", SERVER_ID_HEADER.lower()})
_ALLOWED = _REQUIRED | {"content-type", "x-amz-security-token"}
_VALUE = re.compile(r"^[\x20-\x7e]{1,4096}\Z")


class IamRefused(Refused):
    pass


@dataclass(frozen=True)
class SignedRequest:
    host: str  # the STS endpoint it was signed for
    headers: dict[str, str]  # exactly what goes to STS: the signed headers and Authorization
    signed_at: int  # X-Amz-Date, in seconds since the epoch


@dataclass(frozen=True)
class Authorization:
    access_key: str
    date: str
    region: str
    signed_headers: tuple[str, ...]
    signature: str


def normalise_server_id(text: str) -> str:
    """A registry as clients name it: `host[:port]`, lowercase, without scheme, path or :443."""
    parts = urlsplit(text if "//" in text else f"//{text}")
    netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port not in (None, 443) else "")
    return netloc.lower()


def encode(headers: dict[str, str], url: str) -> str:
    """The password a client sends: the signed request, without its credentials."""
    document = {"method": "POST", "url": url, "body": STS_BODY, "headers": headers}
    return PREFIX + base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


def parse_authorization(value: str) -> Authorization:
    match = _AUTHORIZATION.match(value)
    if match is None:
        raise IamRefused("not a SigV4 STS signature")
    access_key, date, region, signed, signature = match.groups()
    return Authorization(access_key, date, region, tuple(signed.split(";")), signature)


def _decode(password: str) -> dict[str, Any]:
    if not password.startswith(PREFIX) or len(password) > MAX_LENGTH:
        raise IamRefused("not a signed request")
    return json_object(password[len(PREFIX):], IamRefused)


def _region_of(host: str) -> str:
    match = _STS_HOST.match(host)
    if match is None:
        raise IamRefused(f"{host[:100]!r} is not an STS endpoint")
    region, china = match.groups()
    if region is None:
        return "us-east-1"  # the global endpoint signs for us-east-1
    if bool(china) != region.startswith("cn-"):
        raise IamRefused(f"{host!r} is not an STS endpoint")
    return str(region)


def _signed_at(amz_date: str) -> int:
    import calendar

    try:
        return calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        raise IamRefused("malformed X-Amz-Date") from None


def check(password: str, server_id: str, now: float) -> SignedRequest:
    """The signed request in `password`, if it is exactly a GetCallerIdentity for this registry
    (`server_id`), signed within the last 15 minutes; otherwise IamRefused."""
    document = _decode(password)
    raw_headers = document.get("headers")
    if not isinstance(raw_headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and _VALUE.match(v) for k, v in raw_headers.items()):
        raise IamRefused("malformed headers")
    headers = {k.lower(): v for k, v in raw_headers.items()}
    if len(headers) != len(raw_headers):
        raise IamRefused("repeated headers")
    host = headers.get("host", "")
    region = _region_of(host)
    if document.get("method") != "POST" or document.get("body") != STS_BODY or document.get("url") != f"https://{host}/":
        raise IamRefused("not a GetCallerIdentity POST")
    authorization = parse_authorization(headers.get("authorization", ""))
    signed = set(authorization.signed_headers)
    if not signed >= _REQUIRED or not signed <= _ALLOWED or set(headers) != signed | {"authorization"}:
        raise IamRefused(f"signed headers must include {sorted(_REQUIRED)} and be exactly those sent")
    if authorization.region != region:
        raise IamRefused("signed for another region than its endpoint")
    if headers.get("content-type", CONTENT_TYPE).lower().replace(" ", "") not in (
            CONTENT_TYPE.replace(" ", ""), "application/x-www-form-urlencoded"):
        raise IamRefused("not a form body")
    if normalise_server_id(headers[SERVER_ID_HEADER.lower()]) != normalise_server_id(server_id):
        raise IamRefused(f"signed for another registry ({headers[SERVER_ID_HEADER.lower()][:100]!r})")
    signed_at = _signed_at(headers["x-amz-date"])
    if now - signed_at > MAX_AGE_SECONDS or signed_at - now > MAX_AHEAD_SECONDS:
        raise IamRefused("signed too long ago, or in the future")
    if authorization.date != headers["x-amz-date"][:8]:
        raise IamRefused("the credential scope and X-Amz-Date disagree")
    return SignedRequest(host, headers, signed_at)


def caller_arn(request: SignedRequest, endpoint: str | None) -> str:
    """Ask STS whose signature the request carries. `endpoint` replaces the signed host's URL
    in the local mode (its STS); deployed, the request goes to the host it was signed for."""
    import urllib.error
    import urllib.request
    from xml.etree import ElementTree

    class NoRedirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    url = endpoint or f"https://{request.host}/"
    outgoing = urllib.request.Request(url, data=STS_BODY.encode(), method="POST",
                                      headers={"Content-Type": CONTENT_TYPE, **request.headers})
    try:
        with urllib.request.build_opener(NoRedirects).open(outgoing, timeout=STS_TIMEOUT_SECONDS) as response:
            body = response.read(MAX_ANSWER_BYTES)
    except urllib.error.HTTPError as error:
        answer = error.read(MAX_ANSWER_BYTES).decode("utf-8", "replace")
        code = re.search(r"<Code>([A-Za-z.]{1,64})</Code>", answer)
        raise IamRefused(f"STS refused it: {error.code} {code.group(1) if code else ''}") from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise IamRefused(f"STS did not answer: {error}") from None
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise IamRefused("STS answered something else than XML") from None
    arn = next((el.text for el in root.iter() if el.tag.rpartition("}")[2] == "Arn"), None)
    if not arn:
        raise IamRefused("STS named no caller")
    return arn.strip()
