"""The web pages in a real browser: Debian's Chromium, driven by Selenium through Debian's
chromium-driver, against the local mode with token auth, filled by skopeo (an image, an index
of two platforms) and oras-py (a signature and an SBOM attached to the image as referrers).

It logs in, browses, searches, inspects the index and the signed image, copies a pull command,
deletes a tag, reads the storage page, logs out, and checks what users without access get. It
takes the screenshots in docs/ui.md on the way: into $BERTH_UI_SCREENSHOTS when set (that is
how docs/ui/ is refreshed), else into a temporary directory.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import oras.client
import oras.oci
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.conftest import Skopeo
from tests.e2e.images import Layout
from tests.e2e.test_auth import berth
from tests.local import LocalServer, local_server

pytestmark = pytest.mark.e2e

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ADMIN = "admin:admin-secret"
SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SBOM = "application/spdx+json"
DESKTOP, NARROW = (1100, 820), (400, 820)


@dataclass
class Site:
    server: LocalServer
    base: str
    image: str  # digest of team/app:1.0
    index: str  # digest of team/app:multi


def _push(skopeo: Skopeo, layout: Path, tag: str, target: str, *flags: str) -> None:
    skopeo.ok("copy", *flags, "--dest-tls-verify=false", "--dest-creds", ADMIN, f"oci:{layout}:{tag}",
              skopeo.ref(target))


def _attach(server: LocalServer, workdir: Path, image_digest: str, image_size: int, artifact_type: str,
            name: str, data: bytes) -> None:
    """oras-py, as a user would attach a signature or an SBOM: a manifest whose subject is the image."""
    client = oras.client.OrasClient(hostname=server.address, insecure=True, auth_backend="basic")
    user, password = ADMIN.split(":")
    client.login(user, password, hostname=server.address, config_path=str(workdir / f"oras-{name}.json"))
    payload, config = workdir / name, workdir / f"{name}.config.json"
    payload.write_bytes(data)
    config.write_text("{}")
    subject = oras.oci.Subject(mediaType="application/vnd.oci.image.manifest.v1+json", digest=image_digest,
                               size=image_size)
    response = client.push(target=f"{server.address}/team/app:{name.replace('.', '-')}", files=[str(payload)],
                           disable_path_validation=True, quiet=True, subject=subject,
                           manifest_config=f"{config}:{artifact_type}",
                           manifest_annotations={"org.example.signed-by": "release@example.com"})
    assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    for tool in ("skopeo", CHROMIUM, CHROMEDRIVER):
        assert shutil.which(tool), f"{tool} is not installed: run scripts/install-tools (make test does)"
    workdir = tmp_path_factory.mktemp("berth-ui")
    env = {"BERTH_AUTH": "token", "BERTH_BOOTSTRAP_USER": ADMIN}
    with local_server(workdir, env=env) as server:
        berth(server, "user", "add", "reader", "--password-stdin", "--grant", "team/*=pull", stdin="reader-pw\n")
        berth(server, "user", "add", "outsider", "--password-stdin", stdin="outsider-pw\n")
        skopeo = Skopeo(server, workdir)
        layout = Layout(workdir / "layout")
        rich = {"created": "2024-05-01T10:00:00Z",
                "config": {"Entrypoint": ["/usr/bin/app"], "Cmd": ["serve", "--port", "8080"],
                           "Env": ["PATH=/usr/bin:/bin", "APP_MODE=production"], "WorkingDir": "/srv",
                           "ExposedPorts": {"8080/tcp": {}},
                           "Labels": {"org.opencontainers.image.source": "https://example.com/app",
                                      "org.opencontainers.image.version": "1.0"}},
                "history": [{"created": "2024-05-01T09:00:00Z", "created_by": "ADD rootfs.tar.gz /"},
                            {"created": "2024-05-01T09:30:00Z", "created_by": "COPY app /usr/bin/app"},
                            {"created": "2024-05-01T10:00:00Z", "created_by": 'CMD ["serve"]', "empty_layer": True}]}
        image = layout.image([40_000, 120_000], **rich)
        layout.tag(image, "1.0")
        layout.tag(layout.index([layout.image([30_000], "amd64"), layout.image([31_000], "arm64", variant="v8")]),
                   "multi")
        layout.tag(layout.image([5_000]), "old")
        _push(skopeo, layout.root, "1.0", "team/app:1.0")
        _push(skopeo, layout.root, "multi", "team/app:multi", "--all")
        _push(skopeo, layout.root, "old", "team/scratch:old")  # what the delete test deletes
        _push(skopeo, layout.root, "old", "team/tools:latest")
        _push(skopeo, layout.root, "old", "other/secret:1")
        _attach(server, workdir, image["digest"], image["size"], SIGNATURE, "signature.sig", b"signed")
        _attach(server, workdir, image["digest"], image["size"], SBOM, "sbom.spdx.json", b'{"spdxVersion": "2.3"}')
        index = json.loads((layout.root / "index.json").read_text())["manifests"][1]["digest"]
        yield Site(server, f"http://{server.address}", image["digest"], index)


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--hide-scrollbars", "--force-device-scale-factor=1", "--disable-extensions",
                     f"--window-size={DESKTOP[0]},{DESKTOP[1]}"):
        options.add_argument(argument)
    # The driver's path is given, so Selenium's own manager never looks for (or fetches) one.
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = os.environ.get("BERTH_UI_SCREENSHOTS")
    path = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def browser(driver: WebDriver, site: Site) -> WebDriver:
    """The browser, signed out, at the desktop size."""
    driver.set_window_size(*DESKTOP)
    driver.get(f"{site.base}/ui/login")
    driver.delete_all_cookies()
    return driver


def screenshot(driver: WebDriver, shots: Path, name: str, height: int | None = None) -> None:
    """The top of the page, `height` pixels of it (the window's by default)."""
    size = driver.get_window_size()
    if height:
        frame: Any = driver.execute_script("return window.outerHeight - window.innerHeight")
        driver.set_window_size(size["width"], height + frame)
    path = shots / f"{name}.png"
    try:
        assert driver.save_screenshot(str(path))
    finally:
        driver.set_window_size(size["width"], size["height"])
    assert path.stat().st_size > 5_000  # a page, not a blank


def go(driver: WebDriver, action: Callable[[], object]) -> None:
    """Do what loads a new page (a click, Enter in a form) and wait until it has loaded."""
    # A mark on the old page's window, gone once a new document has loaded. (Polling the old
    # page's element for staleness, as Selenium's staleness_of does, can meet the document
    # mid-swap, which chromedriver reports as an unknown error rather than staleness.)
    driver.execute_script("window.berthOldPage = true")
    action()
    WebDriverWait(driver, 30, ignored_exceptions=[WebDriverException]).until(
        lambda d: d.execute_script("return !window.berthOldPage && document.readyState === 'complete'"))


def heading(driver: WebDriver) -> str:
    return driver.find_element(By.TAG_NAME, "h1").text


def log_in(driver: WebDriver, site: Site, user: str, password: str) -> None:
    driver.get(f"{site.base}/ui/")
    assert driver.current_url.startswith(f"{site.base}/ui/login")
    driver.find_element(By.ID, "user").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(password)
    go(driver, driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click)


def log_out(driver: WebDriver) -> None:
    go(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Log out']").click)
    assert heading(driver) == "Log in to Berth"


def link(driver: WebDriver, text: str) -> WebElement:
    return driver.find_element(By.LINK_TEXT, text)


def column(driver: WebDriver, table: int, index: int) -> list[str]:
    """The cells of one column of the page's `table`-th table (from 1)."""
    rows = driver.find_elements(By.XPATH, f"(//div[@class='scroll'])[{table}]//tbody/tr")
    return [row.find_elements(By.TAG_NAME, "td")[index].text for row in rows]


def labelled(driver: WebDriver) -> None:
    """Every visible control has a name a screen reader can say."""
    for control in driver.find_elements(By.CSS_SELECTOR, "input:not([type=hidden]), button, a"):
        if not control.is_displayed():
            continue
        name = control.accessible_name.strip()
        assert name, control.get_attribute("outerHTML")


def test_log_in_browse_search_and_log_out(browser: WebDriver, site: Site, shots: Path) -> None:
    browser.get(f"{site.base}/ui/r/team/app")
    assert heading(browser) == "Log in to Berth"
    screenshot(browser, shots, "login", 460)
    browser.find_element(By.ID, "user").send_keys("admin")
    go(browser, lambda: browser.find_element(By.ID, "password").send_keys("not the password", Keys.ENTER))
    assert "Wrong user name, password or token." in browser.find_element(By.CSS_SELECTOR, "[role=alert]").text
    go(browser, lambda: browser.find_element(By.ID, "password").send_keys("admin-secret", Keys.ENTER))
    assert heading(browser) == "team/app"  # where the visit began
    assert browser.get_cookie("berth_session")["httpOnly"]  # type: ignore[index]
    assert browser.get_cookie("berth_session")["sameSite"] == "Strict"  # type: ignore[index]
    go(browser, link(browser, "Repositories").click)
    assert column(browser, 1, 0) == ["other/secret", "team/app", "team/scratch", "team/tools"]
    assert column(browser, 1, 1)[1] == "4"  # team/app: 1.0, multi and the tags oras gave the two referrers
    labelled(browser)
    screenshot(browser, shots, "repositories", 440)
    search = browser.find_element(By.ID, "q")
    go(browser, lambda: search.send_keys("tool", Keys.ENTER))
    assert column(browser, 1, 0) == ["team/tools"]
    assert browser.find_element(By.ID, "q").get_attribute("value") == "tool"
    log_out(browser)
    browser.get(f"{site.base}/ui/")
    assert heading(browser) == "Log in to Berth"


def test_inspect_an_index_and_a_signed_image(browser: WebDriver, site: Site, shots: Path) -> None:
    log_in(browser, site, "admin", "admin-secret")
    go(browser, link(browser, "team/app").click)
    tags = column(browser, 1, 0)
    assert set(tags) == {"1.0", "multi", "signature-sig", "sbom-spdx-json"}
    platforms = dict(zip(tags, column(browser, 1, 3), strict=True))
    assert platforms["multi"].split() == ["linux/amd64", "linux/arm64"]  # as the index names them
    assert platforms["1.0"] == "linux/amd64"
    assert "artifact: application/vnd.dev.cosign.artifact.sig.v1+json" in platforms["signature-sig"]
    screenshot(browser, shots, "repository", 520)

    go(browser, link(browser, "multi").click)
    assert heading(browser) == "team/app:multi"
    assert column(browser, 1, 0) == ["linux/amd64", "linux/arm64"]
    screenshot(browser, shots, "index", 760)
    go(browser, browser.find_elements(By.CSS_SELECTOR, ".scroll tbody tr td a")[1].click)  # the arm64 image
    assert heading(browser).startswith("team/app@sha256:")
    assert "linux/arm64/v8" in browser.find_element(By.CSS_SELECTOR, "dl.facts").text  # as its config does

    browser.get(f"{site.base}/ui/r/team/app:1.0")
    facts = browser.find_element(By.CSS_SELECTOR, "dl.facts").text
    assert site.image in facts and "linux/amd64" in facts
    page = browser.find_element(By.TAG_NAME, "main").text
    for shown in ('["/usr/bin/app"]', '["serve", "--port", "8080"]', "APP_MODE=production", "8080/tcp",
                  "org.opencontainers.image.version", "COPY app /usr/bin/app", "Signatures (1)", "SBOMs (1)",
                  "release@example.com", SIGNATURE, SBOM):
        assert shown in page, shown
    assert len(column(browser, 1, 2)) == 2  # the layers
    screenshot(browser, shots, "image", 1000)
    referrers = browser.find_element(By.XPATH, "//h2[normalize-space()='Referrers']")
    browser.execute_script("arguments[0].scrollIntoView()", referrers)
    screenshot(browser, shots, "referrers", 360)
    browser.execute_script("window.scrollTo(0, 0)")

    commands = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".command pre")]
    assert commands == [f"docker pull {site.server.address}/team/app:1.0",
                        f"podman pull --tls-verify=false {site.server.address}/team/app:1.0",
                        f"skopeo copy --src-tls-verify=false docker://{site.server.address}/team/app:1.0 oci:app:1.0"]
    browser.execute_cdp_cmd("Browser.grantPermissions", {  # type: ignore[attr-defined]
        "origin": site.base, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    copy = browser.find_element(By.CSS_SELECTOR, "button[aria-label='Copy the podman command']")
    copy.click()
    assert browser.find_element(By.ID, "cmd-1-status").text in ("Copied.", "Selected: press Ctrl+C to copy.")
    copied = browser.execute_async_script(
        "navigator.clipboard.readText().then(arguments[0], () => arguments[0](null))")
    assert copied in (commands[1], None)

    signature = browser.find_element(By.XPATH, "//h3[starts-with(., 'Signatures')]/following::tbody[1]//a")
    go(browser, signature.click)
    assert "Refers to" in browser.find_element(By.CSS_SELECTOR, "dl.facts").text


def test_delete_a_tag_after_confirming(browser: WebDriver, site: Site, shots: Path) -> None:
    log_in(browser, site, "admin", "admin-secret")
    browser.get(f"{site.base}/ui/r/team/scratch:old")
    go(browser, link(browser, "Delete tag old…").click)
    assert heading(browser) == "Delete tag team/scratch:old?"
    screenshot(browser, shots, "delete", 380)
    go(browser, link(browser, "Cancel").click)
    assert heading(browser) == "team/scratch:old"
    go(browser, link(browser, "Delete tag old…").click)
    go(browser, browser.find_element(By.XPATH, "//button[normalize-space()='Delete']").click)
    assert "Deleted team/scratch:old." in browser.find_element(By.CSS_SELECTOR, "[role=status]").text
    assert "No tags." in browser.find_element(By.TAG_NAME, "main").text
    browser.get(f"{site.base}/ui/r/team/scratch:old")
    assert heading(browser) == "Not found"


def test_storage(browser: WebDriver, site: Site, shots: Path) -> None:
    log_in(browser, site, "admin", "admin-secret")
    go(browser, link(browser, "Storage").click)
    assert heading(browser) == "Storage"
    rows = dict(zip(column(browser, 1, 0), column(browser, 1, 1), strict=True))
    assert rows["Repositories"] == "4"
    go(browser, browser.find_element(By.XPATH,
                                     "//button[normalize-space()='Work out what a collection would free']").click)
    assert "A dry run of the collection, now" in browser.find_element(By.TAG_NAME, "main").text
    screenshot(browser, shots, "storage", 1060)


def test_users_without_access_see_nothing_of_it(browser: WebDriver, site: Site) -> None:
    log_in(browser, site, "reader", "reader-pw")
    assert column(browser, 1, 0) == ["team/app", "team/scratch", "team/tools"]
    assert not browser.find_elements(By.LINK_TEXT, "Storage")
    for path in ("/ui/r/other/secret", "/ui/r/other/secret:1", "/ui/storage"):
        browser.get(site.base + path)
        assert heading(browser) in ("Not found", "Not allowed"), path
    browser.get(f"{site.base}/ui/r/team/app:1.0")
    assert not browser.find_elements(By.PARTIAL_LINK_TEXT, "Delete")
    browser.get(f"{site.base}/ui/delete?repo=team/app&ref=1.0")
    assert heading(browser) == "Not allowed"
    browser.get(f"{site.base}/ui/")
    log_out(browser)
    log_in(browser, site, "outsider", "outsider-pw")
    assert "No repositories you may pull yet" in browser.find_element(By.TAG_NAME, "main").text
    with pytest.raises(NoSuchElementException):
        browser.find_element(By.CSS_SELECTOR, "tbody tr")


def test_narrow_screens_and_the_keyboard(browser: WebDriver, site: Site, shots: Path) -> None:
    browser.set_window_size(*NARROW)
    browser.get(f"{site.base}/ui/")
    # Only the keyboard: the login form has the focus; then skip to the content, Tab to the search.
    assert browser.switch_to.active_element.get_attribute("id") == "user"
    go(browser, lambda: browser.switch_to.active_element.send_keys("admin", Keys.TAB, "admin-secret", Keys.ENTER))
    assert heading(browser) == "Repositories"
    keys = ActionChains(browser)
    keys.send_keys(Keys.TAB).perform()
    assert browser.switch_to.active_element.text == "Skip to content"
    keys.send_keys(Keys.ENTER).perform()
    keys.send_keys(Keys.TAB).perform()
    assert browser.switch_to.active_element.get_attribute("id") == "q"
    go(browser, lambda: keys.send_keys("app", Keys.ENTER).perform())
    assert column(browser, 1, 0) == ["team/app"]
    for path in ("/ui/", "/ui/r/team/app", "/ui/r/team/app:1.0", "/ui/r/team/app:multi", "/ui/storage"):
        browser.get(site.base + path)
        overflow: Any = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{path} scrolls sideways at {NARROW[0]} px"
    browser.get(f"{site.base}/ui/r/team/app:1.0")
    screenshot(browser, shots, "image-narrow")
