"""Every page on one screen: method, path, view, and whether it is open before a login.

Repository names hold slashes but never `:` or `@`, and tags hold neither, so a page of a
tag or digest reads like the reference a client pulls: `/ui/r/team/app:1.0`,
`/ui/r/team/app@sha256:...`. Every action is a POST; a GET never changes anything.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from chalice import Response

from chalicelib.ui import views
from chalicelib.ui.context import Context

View = Callable[[Context], Response]

NAME = r"(?P<name>[^:@]+)"


@dataclass(frozen=True)
class Page:
    method: str
    pattern: str
    view: View
    public: bool = False  # open without a session: the login form
    static: bool = False  # the same for everyone: no session read, no cookie set
    regex: re.Pattern[str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", re.compile(f"^{self.pattern}\\Z"))


PAGES: tuple[Page, ...] = (
    Page("GET",  r"/ui/",                                   views.repositories),
    Page("GET",  r"/ui/login",                              views.login_form,   public=True),
    Page("POST", r"/ui/login",                              views.login,        public=True),
    Page("POST", r"/ui/logout",                             views.logout),
    Page("GET",  r"/ui/storage",                            views.storage),
    Page("GET",  r"/ui/delete",                             views.confirm_delete),
    Page("POST", r"/ui/delete",                             views.delete),
    Page("GET",  r"/ui/static/(?P<asset>[^/]+)",            views.asset,        static=True),
    Page("GET",  rf"/ui/r/{NAME}@(?P<reference>[^/@]+)",    views.manifest),
    Page("GET",  rf"/ui/r/{NAME}:(?P<reference>[^/:@]+)",   views.manifest),
    Page("GET",  rf"/ui/r/{NAME}",                          views.repository),
)
LOGOUT = "/ui/logout"


def find_page(method: str, path: str) -> tuple[Page | None, dict[str, str], list[str]]:
    """The page for a request (a HEAD is a GET without the body), its parameters, and the
    methods the path answers to (for a 405)."""
    wanted = "GET" if method == "HEAD" else method
    allowed = []
    for page in PAGES:
        match = page.regex.match(path)
        if match is None:
            continue
        if page.method == wanted:
            return page, match.groupdict(), []
        allowed.append(page.method)
    return None, {}, allowed
