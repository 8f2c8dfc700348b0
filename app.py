"""Berth's Lambda entry point: wiring only. Every `/v2/` request goes to one dispatcher."""

from chalice import Chalice

from chalicelib.api.dispatch import handle
from chalicelib.api.request import RegistryRequest
from chalicelib.api.routes import METHODS
from chalicelib.registry import Registry
from chalicelib.settings import Settings

app = Chalice(app_name="berth")
# Request bodies of these types reach Lambda base64-encoded, byte for byte. Responses are
# never declared binary (see chalicelib/api/responses.py).
app.api.binary_types = ["application/octet-stream"]

registry = Registry.build(Settings.from_env())


@app.route("/v2", methods=METHODS, content_types=["*/*"])
@app.route("/v2/{proxy+}", methods=METHODS, content_types=["*/*"])
def v2() -> object:
    request = app.current_request
    assert request is not None
    body = request.raw_body
    raw = body.encode("utf-8") if isinstance(body, str) else body
    return handle(RegistryRequest.from_event(request.to_original_event(), raw), registry)
