"""What API Gateway (REST, Lambda proxy integration) does to a request and a response.

Tests and the local server both go through here, so they exercise the handler exactly as
the deployed API does: one greedy `/v2/{proxy+}` resource, bodies base64-encoded when their
Content-Type is a binary media type, repeated headers in `multiValueHeaders`, the Lambda
event limit, and the headers API Gateway renames on the way out.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, unquote

from berth.deploy.api import BINARY_MEDIA_TYPES
from chalicelib.auth.gateway import GatewayAnswer, gateway_answers
from chalicelib.auth.permissions import pattern_matches
from chalicelib.settings import Settings

# Lambda's synchronous invocation payload limit, for the request event and the response.
LAMBDA_PAYLOAD_LIMIT = 6_291_456
# A Lambda authorizer's result (service quota L-20859C74, not adjustable).
AUTHORIZER_RESULT_LIMIT = 8192
# The longest method ARN API Gateway hands an authorizer; a longer request is refused first.
METHOD_ARN_LIMIT = 1600
# Response headers API Gateway REST APIs rename on Lambda proxy responses.
REMAPPED_HEADERS = ("www-authenticate", "authorization", "connection", "date", "server")


@dataclass
class GatewayResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[-1] if values else None

    def json(self) -> Any:
        return json.loads(self.body)


def _matches(content_type: str, binary_types: Iterable[str]) -> bool:
    media_type = content_type.split(";")[0].strip().lower()
    return "*/*" in binary_types or media_type in {t.lower() for t in binary_types}


def resource_for(path: str) -> tuple[str, dict[str, str] | None] | None:
    if path == "/token":
        return "/token", None
    if path in ("/v2", "/v2/"):
        return "/v2", None
    if path.startswith("/v2/"):
        return "/v2/{proxy+}", {"proxy": path[len("/v2/"):]}
    if path == "/ui":  # the web pages: routed alike, never behind the authorizer (app.py)
        return "/ui", None
    if path.startswith("/ui/"):
        return "/ui/{proxy+}", {"proxy": path[len("/ui/"):]}
    return None


def build_event(method: str, target: str, headers: list[tuple[str, str]], body: bytes,
                binary_types: Iterable[str], source: str = "127.0.0.1") -> dict[str, Any] | None:
    """The Lambda proxy event for a request, or None where no API resource matches."""
    raw_path, _, query_string = target.partition("?")
    path = unquote(raw_path)
    resource = resource_for(path)
    if resource is None:
        return None
    resource_path, path_parameters = resource
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        multi_headers.setdefault(name, []).append(value)
    multi_query: dict[str, list[str]] = {}
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        multi_query.setdefault(name, []).append(value)
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
    is_binary = bool(body) and _matches(content_type, binary_types)
    if is_binary:
        encoded: str | None = base64.b64encode(body).decode("ascii")
    else:
        # A text body passes as a string: bytes that are not UTF-8 do not survive, as deployed.
        encoded = body.decode("utf-8", errors="replace") if body else None
    request_id = str(uuid.uuid4())
    return {
        "resource": resource_path,
        "path": path,
        "httpMethod": method,
        "headers": {k: v[-1] for k, v in multi_headers.items()} or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource_path,
            "httpMethod": method,
            "path": path,
            "stage": "local",
            "requestId": request_id,
            "identity": {"sourceIp": source},
        },
        "body": encoded,
        "isBase64Encoded": is_binary,
    }


def event_too_large(event: dict[str, Any]) -> bool:
    return len(json.dumps(event, separators=(",", ":"))) > LAMBDA_PAYLOAD_LIMIT


def to_http(result: dict[str, Any], method: str) -> GatewayResponse:
    """The client's view of a Lambda proxy result."""
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
    headers: list[tuple[str, str]] = []
    for name, value in (result.get("headers") or {}).items():
        headers.append((name, str(value)))
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((name, str(v)) for v in values)
    headers = [(f"x-amzn-Remapped-{k}" if k.lower() in REMAPPED_HEADERS else k, v) for k, v in headers]
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", "application/json"))  # API Gateway's default
    if not any(k.lower() == "content-length" for k, _ in headers) or method != "HEAD":
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(raw))))
    return GatewayResponse(int(result["statusCode"]), headers, b"" if method == "HEAD" else raw)


def _own_answer(status: int, payload: Any) -> GatewayResponse:
    body = json.dumps(payload).encode()
    return GatewayResponse(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))], body)


def gateway_error(status: int, message: str, error_type: str | None = None) -> GatewayResponse:
    """One of API Gateway's default gateway responses (the request never reaches Lambda): the
    body its default template `{"message":$context.error.messageString}` makes, byte for byte."""
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    return GatewayResponse(status, headers + ([("x-amzn-ErrorType", error_type)] if error_type else []), body)


def missing_authentication_token() -> GatewayResponse:
    """MISSING_AUTHENTICATION_TOKEN: API Gateway's answer to a resource, or a method of a
    resource, that the API does not define."""
    return gateway_error(403, "Missing Authentication Token", "MissingAuthenticationTokenException")


class LambdaContext:
    """The attributes Chalice and Powertools read from a Lambda context."""

    function_name = "berth-local"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:berth-local"
    aws_request_id = "local"

    def __init__(self, timeout_ms: int = 29_000) -> None:
        self._deadline = time.monotonic() + timeout_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


def invoke(app: Any, method: str, target: str, headers: list[tuple[str, str]], body: bytes,
           source: str = "127.0.0.1") -> GatewayResponse:
    """One request through API Gateway and Lambda, as deployed, from the address `source`. A
    HEAD gets no body, from the function or from the gateway's own answers."""
    response = _through_gateway(app, method, target, headers, body, source)
    return replace(response, body=b"") if method == "HEAD" else response


def _through_gateway(app: Any, method: str, target: str, headers: list[tuple[str, str]],
                     body: bytes, source: str) -> GatewayResponse:
    event = build_event(method, target, headers, body, BINARY_MEDIA_TYPES, source)
    if event is None or method not in app.routes.get(event["resource"], {}):
        return missing_authentication_token()
    if event_too_large(event):
        return request_too_large()
    refused = run_authorizer(app, event)
    if refused is not None:
        return refused
    return to_http(app(event, LambdaContext()), method)


def run_authorizer(app: Any, event: dict[str, Any]) -> GatewayResponse | None:
    """What API Gateway does with a route's REQUEST authorizer (identity source: the
    Authorization header), its result never cached (TTL 0, as app.py declares): no
    Authorization header, or the authorizer saying "Unauthorized", is
    the UNAUTHORIZED gateway response; a result over the 8 KB limit is
    AUTHORIZER_CONFIGURATION_ERROR; a policy that does not allow the request is ACCESS_DENIED;
    otherwise the authorizer's context reaches Lambda."""
    entry = app.routes.get(event["resource"], {}).get(event["httpMethod"])
    if entry is None or entry.authorizer is None:
        return None
    headers = {k.lower(): v for k, v in (event["headers"] or {}).items()}
    host = headers.get("host", "localhost")
    settings = Settings.from_env()
    answers = gateway_answers(settings, settings.public_url or f"http://{host}")
    token = headers.get("authorization")
    if not token:
        return _answer(answers["UNAUTHORIZED"])
    method_arn = f"arn:aws:execute-api:us-east-1:000000000000:local/api/{event['httpMethod']}{event['path']}"
    if len(method_arn) > METHOD_ARN_LIMIT:
        return gateway_error(414, "Request-URI Too Long")
    try:
        result = entry.authorizer({"type": "REQUEST", "methodArn": method_arn, "resource": event["resource"],
                                   "path": event["path"], "httpMethod": event["httpMethod"],
                                   "headers": event["headers"], "multiValueHeaders": event["multiValueHeaders"],
                                   "queryStringParameters": event["queryStringParameters"],
                                   "requestContext": event["requestContext"]}, None)
    except Exception as error:
        return _answer(answers["UNAUTHORIZED" if str(error) == "Unauthorized" else "AUTHORIZER_FAILURE"])
    if len(json.dumps(result, separators=(",", ":"))) > AUTHORIZER_RESULT_LIMIT:
        return _answer(answers["AUTHORIZER_CONFIGURATION_ERROR"])
    if not _policy_allows(result.get("policyDocument", {}), method_arn):
        return _answer(answers["ACCESS_DENIED"])
    event["requestContext"]["authorizer"] = {"principalId": result.get("principalId"), **result.get("context", {})}
    return None


def _policy_allows(document: dict[str, Any], method_arn: str) -> bool:
    """IAM's rule: an explicit Deny wins, else some Allow must match."""
    effects = set()
    for statement in document.get("Statement", []):
        resources = statement.get("Resource", [])
        resources = [resources] if isinstance(resources, str) else resources
        # IAM's wildcards: `*` (any characters, `/` included) and `?`; brackets are literal.
        if any(pattern_matches(r, method_arn) for r in resources):
            effects.add(statement.get("Effect"))
    return "Allow" in effects and "Deny" not in effects


def _answer(answer: GatewayAnswer) -> GatewayResponse:
    response = _own_answer(answer.status, answer.body)
    response.headers.extend(answer.headers.items())
    return response


def request_too_large() -> GatewayResponse:
    """A request whose event would exceed the Lambda payload limit never reaches the function:
    API Gateway answers it itself, and that answer (REQUEST_TOO_LARGE) cannot be customised."""
    return gateway_error(413, "Request Too Long")
