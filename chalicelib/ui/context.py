"""A page request as views see it: the request, the visitor, the registry, and the answers
views give (pages, redirects, refusals)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from urllib.parse import parse_qs

from chalice import Response

from chalicelib.api.dispatch import realm_base
from chalicelib.api.request import RegistryRequest
from chalicelib.registry import Registry
from chalicelib.storage.browse import BrowseStore
from chalicelib.ui.browse import Browser
from chalicelib.ui.pages import Chrome
from chalicelib.ui.visitor import Visitor

# A form posts a few short fields; anything larger is not one of ours.
MAX_FORM_BYTES = 16 * 1024
HTML = "text/html; charset=utf-8"


class PageError(Exception):
    """A refusal or a miss, shown as a page with this status."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.detail = detail


def not_found() -> PageError:
    # The same answer for what does not exist and what the visitor may not pull.
    return PageError(404, "Not found", "There is nothing here that you may see.")


@dataclass
class Context:
    req: RegistryRequest
    registry: Registry
    visitor: Visitor
    now: float

    @property
    def params(self) -> dict[str, str]:
        """From the page's path pattern."""
        return self.req.params

    def arg(self, name: str) -> str:
        return self.req.arg(name) or ""

    @cached_property
    def form(self) -> dict[str, str]:
        if len(self.req.body) > MAX_FORM_BYTES:
            raise PageError(413, "Not a form of these pages", "Nothing was changed.")
        try:
            fields = parse_qs(self.req.body.decode("utf-8", errors="replace"), keep_blank_values=True,
                              max_num_fields=16)
        except ValueError:  # more fields than any of ours
            raise PageError(400, "Not a form of these pages", "Nothing was changed.") from None
        return {name: values[0] for name, values in fields.items()}

    @property
    def base(self) -> str:
        """Where clients reach the registry: configured, else as this request did."""
        return realm_base(self.req, self.registry.settings.public_url)

    @property
    def host(self) -> str:
        """The registry's host (and port), as pull commands name it."""
        return self.base.split("://", 1)[-1]

    @property
    def secure(self) -> bool:
        return self.base.startswith("https://")

    @property
    def chrome(self) -> Chrome:
        session = self.visitor.session
        return Chrome(session.user if session else None, self.visitor.csrf, self.visitor.sees_everything, self.now)

    @cached_property
    def browser(self) -> Browser:
        registry = self.registry
        assert registry.clients is not None, "Registry.build wires the clients"
        store = BrowseStore(registry.clients, registry.settings.table)
        return Browser(store, registry.meta, registry.blobs, registry.manifests)


def page(html: str, status: int = 200) -> Response:
    return Response(body=html, status_code=status, headers={"Content-Type": HTML})


def redirect(location: str) -> Response:
    return Response(body="", status_code=303, headers={"Location": location, "Content-Type": HTML})
