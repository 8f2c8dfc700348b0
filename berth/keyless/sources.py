"""Where keyless credentials come from: an OIDC ID token the CI provider gives the job, or an
STS `GetCallerIdentity` request signed with the caller's AWS credentials (as boto3 finds
them). Neither is stored: each is made when a client asks for credentials."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from berth.keyless.store import Entry
from chalicelib.auth import iam
from chalicelib.auth.keyless import AWS_USER, OIDC_USER

ID_TOKEN_ENV = "BERTH_ID_TOKEN"  # an ID token the CI put in the environment (GitLab `id_tokens`, ...)
AUDIENCE_ENV = "BERTH_OIDC_AUDIENCE"  # the audience to ask GitHub for, when not the registry's name
GITHUB_URL_ENV, GITHUB_TOKEN_ENV = "ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
REQUEST_TIMEOUT = 15


class NoCredentials(Exception):
    pass


def in_ci(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this environment can give an OIDC ID token."""
    return bool(environ.get(ID_TOKEN_ENV)) or bool(environ.get(GITHUB_URL_ENV) and environ.get(GITHUB_TOKEN_ENV))


def id_token(audience: str, environ: Mapping[str, str] = os.environ) -> str:
    """An ID token for `audience`: the one in BERTH_ID_TOKEN (its audience was set where the
    CI made it), or a fresh one from GitHub Actions' token service."""
    given = environ.get(ID_TOKEN_ENV, "").strip()
    if given:
        return given
    url, bearer = environ.get(GITHUB_URL_ENV), environ.get(GITHUB_TOKEN_ENV)
    if not url or not bearer:
        raise NoCredentials(f"no OIDC ID token here: set {ID_TOKEN_ENV}, or in GitHub Actions grant the job "
                            "`permissions: id-token: write`")
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), ("audience", audience)])
    request = urllib.request.Request(urlunsplit(parts._replace(query=query)),
                                     headers={"Authorization": f"bearer {bearer}", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
            value = json.loads(response.read()).get("value")
    except (urllib.error.URLError, OSError, ValueError, AttributeError) as error:
        raise NoCredentials(f"GitHub's token service did not give an ID token: {error}") from None
    if not isinstance(value, str) or not value:
        raise NoCredentials("GitHub's token service did not give an ID token")
    return value


def sts_host(region: str) -> str:
    return f"sts.{region}.amazonaws.com" + (".cn" if region.startswith("cn-") else "")


def aws_password(server_id: str) -> str:
    """A GetCallerIdentity request signed with this machine's AWS credentials, naming the
    registry `server_id` (so that it is worth nothing to any other service)."""
    import botocore.session
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    session = botocore.session.get_session()
    credentials = session.get_credentials()
    if credentials is None:
        raise NoCredentials("no AWS credentials found (environment, profile, SSO or instance role)")
    region = session.get_config_variable("region") or "us-east-1"
    host = sts_host(region)
    request = AWSRequest(method="POST", url=f"https://{host}/", data=iam.STS_BODY,
                         headers={"Content-Type": iam.CONTENT_TYPE,
                                  iam.SERVER_ID_HEADER: iam.normalise_server_id(server_id)})
    SigV4Auth(credentials.get_frozen_credentials(), "sts", region).add_auth(request)
    return iam.encode({"Host": host, **{k: str(v) for k, v in request.headers.items()}}, f"https://{host}/")


def credentials(registry: str, entry: Entry | None, environ: Mapping[str, str] = os.environ) -> tuple[str, str] | None:
    """The user name and password for `registry`, made now as its entry says: a stored CI
    token, a signed STS request, or an ID token; without an entry, an ID token where the CI
    offers one. None when there is nothing to offer."""
    server_id = iam.normalise_server_id(registry)
    if entry is not None and entry.method == "password":
        return entry.username, entry.secret
    if entry is not None and entry.method == AWS_USER:
        return AWS_USER, aws_password(server_id)
    if entry is not None or in_ci(environ):
        audience = (entry.audience if entry else "") or environ.get(AUDIENCE_ENV) or server_id
        return OIDC_USER, id_token(audience, environ)
    return None
