"""Requests the relay does not answer itself go upstream as they came: method, path, query,
headers (`Authorization` too) and body. The answer comes back as it went (berth.relay.server
streams it), with `Location` and `Link` pointing at the relay rather than the upstream. 401
challenges pass through, so the client logs in at the upstream's token realm itself; so do
the 307 redirects of blob GETs to presigned S3 URLs, so pulled bytes never pass through the
relay."""

from __future__ import annotations

from email.message import Message

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from berth.relay.upstream import Upstream

# Hop-by-hop headers, and those the HTTP library sets itself for the upstream.
REQUEST_SKIP = frozenset({"connection", "keep-alive", "proxy-authorization", "proxy-connection", "te", "trailer",
                          "transfer-encoding", "upgrade", "host", "content-length", "expect"})
# Hop-by-hop headers, and those the relay's HTTP server writes itself.
RESPONSE_SKIP = frozenset({"connection", "keep-alive", "proxy-authenticate", "trailer", "transfer-encoding",
                           "upgrade", "date", "server"})
# Forwarded bodies are manifests (the registry takes up to 4 MiB) and token requests: the relay
# holds them to send them with a length, and refuses what no Lambda payload could carry anyway.
FORWARD_BODY_MAX = 6_291_456
TIMEOUT = (15, 300)  # connect, read (seconds)
POOL_SIZE = 32


class ForwardFailed(Exception):
    """The upstream did not answer."""


class Forwarder:
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.http = requests.Session()
        self.http.headers.clear()  # the client's headers and nothing else
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE)
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)

    def send(self, method: str, target: str, headers: Message, body: bytes = b"") -> requests.Response:
        """Send a request upstream; the response's body is still to be read (and closed)."""
        sent: CaseInsensitiveDict[str] = CaseInsensitiveDict()
        for name, value in headers.items():
            if name.lower() not in REQUEST_SKIP:
                # Repeated headers (docker sends one Accept per manifest type) fold into one.
                sent[name] = f"{sent[name]}, {value}" if name in sent else value
        try:
            return self.http.request(method, self.upstream.origin + target, headers=sent, data=body or None,
                                     stream=True, allow_redirects=False, timeout=TIMEOUT,
                                     verify=not self.upstream.insecure)
        except requests.RequestException as error:
            raise ForwardFailed(f"{method} {target.split('?')[0]}: {type(error).__name__}") from error

    def response_headers(self, response: requests.Response) -> list[tuple[str, str]]:
        """The upstream's response headers as the relay passes them on."""
        origin = self.upstream.origin
        passed = []
        for name, value in response.raw.headers.items():
            lower = name.lower()
            if lower in RESPONSE_SKIP:
                continue
            if lower == "location" and value.startswith(origin + "/"):
                value = value[len(origin):]
            elif lower == "link":
                value = value.replace(f"<{origin}/", "</")
            passed.append((name, value))
        return passed

    def close(self) -> None:
        self.http.close()
