"""`/v2/`: the version check every client starts with."""

from chalice import Response

from chalicelib.api.request import RegistryRequest
from chalicelib.api.responses import json_body
from chalicelib.registry import Registry


def version_check(req: RegistryRequest, reg: Registry) -> Response:
    return json_body({})
