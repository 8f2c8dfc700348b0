"""`POST /v2/_berth/doctor`: the registry's report on itself for `berth doctor` (a Berth
extension, docs/deploy.md). POST because it sends a test event when events are on."""

from chalice import Response

from chalicelib import diagnostics
from chalicelib.api.request import RegistryRequest
from chalicelib.api.responses import json_body
from chalicelib.registry import Registry

PATH = "/v2/_berth/doctor"


def report(req: RegistryRequest, reg: Registry) -> Response:
    return json_body(diagnostics.report(reg))
