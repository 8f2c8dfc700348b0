"""STS for the local mode: moto's, behind a check of the request's signature as STS makes it.

moto answers `GetCallerIdentity` without checking the signature, and for an access key it
never issued with a made-up default identity; STS refuses both. The registry forwards signed
requests here (BERTH_STS_ENDPOINT), so that the local mode answers as AWS would: the access
key must be one moto issued (an IAM user's, or an assumed role's with its session token), the
SigV4 signature must be right for its secret, and no older than 15 minutes. Then moto answers.
"""

from __future__ import annotations

import calendar
import hmac
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from chalicelib.auth.iam import IamRefused, parse_authorization

MAX_AGE_SECONDS = 15 * 60
_ERROR = ('<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
          '<Code>{code}</Code><Message>{message}</Message></Error><RequestId>local</RequestId></ErrorResponse>')


class Refusal(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _secret(access_key: str) -> tuple[str, str | None]:
    """The secret key moto issued with `access_key`, and the session token that goes with it."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    for account in list(sts_backends.keys()):
        for sts in list(sts_backends[account].values()):
            role = sts.get_assumed_role_from_access_key(access_key)
            if role is not None:
                return role.secret_access_key, role.session_token
    for account in list(iam_backends.keys()):
        for iam in list(iam_backends[account].values()):
            user = iam.get_user_from_access_key_id(access_key)
            if user is not None:
                key = next(k for k in iam.list_access_keys(user.name) if k.access_key_id == access_key)
                if key.status != "Active":
                    break
                return key.secret_access_key, None
    raise Refusal("InvalidClientTokenId", "The security token included in the request is invalid.")


def check_signature(headers: dict[str, str], body: bytes, now: float) -> None:
    """Refuses a request STS would refuse for its credentials or signature."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    lower = {k.lower(): v for k, v in headers.items()}
    try:
        authorization = parse_authorization(lower.get("authorization", ""))
    except IamRefused:
        raise Refusal("IncompleteSignature", "Authorization header requires a SigV4 signature.") from None
    secret, session_token = _secret(authorization.access_key)
    if not hmac.compare_digest(session_token or "", lower.get("x-amz-security-token", "")):
        raise Refusal("InvalidClientTokenId", "The security token included in the request is invalid.")
    amz_date = lower.get("x-amz-date", "")
    try:
        signed_at = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        raise Refusal("IncompleteSignature", "X-Amz-Date is missing or malformed.") from None
    if abs(now - signed_at) > MAX_AGE_SECONDS:
        raise Refusal("SignatureDoesNotMatch", f"Signature expired: {amz_date} is now earlier than allowed.")
    signed = {name: lower[name] for name in authorization.signed_headers if name in lower and name != "host"}
    request = AWSRequest(method="POST", url=f"https://{lower.get('host', '')}/", data=body, headers=signed)
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(authorization.access_key, secret, session_token), "sts", authorization.region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if set(authorization.signed_headers) != set(signed) | {"host"} or not hmac.compare_digest(
            expected, authorization.signature):
        raise Refusal("SignatureDoesNotMatch", "The request signature we calculated does not match the signature "
                                               "you provided.")


def _handler(moto_endpoint: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = dict(self.headers.items())
            try:
                check_signature(headers, body, time.time())
            except Refusal as refusal:
                self._answer(403, _ERROR.format(code=refusal.code, message=refusal).encode())
                return
            forwarded = urllib.request.Request(moto_endpoint + "/", data=body, method="POST", headers=headers)
            try:
                with urllib.request.urlopen(forwarded, timeout=30) as response:
                    self._answer(response.status, response.read())
            except urllib.error.HTTPError as error:
                self._answer(error.code, error.read())

    return Handler


@dataclass
class LocalSts:
    server: ThreadingHTTPServer
    thread: threading.Thread

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def start(moto_endpoint: str) -> LocalSts:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(moto_endpoint))
    thread = threading.Thread(target=server.serve_forever, name="local-sts", daemon=True)
    thread.start()
    return LocalSts(server, thread)
