"""Playwright against pytest-django's live server, driving Debian's Chromium."""

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.factories import ensure_roles

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct-horse-battery"  # tests.factories.UserFactory's


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one test module; never downloaded (`make test` installs Debian's).

    Playwright's sync API runs an event loop in this thread while it is open, so Django's
    ORM (the tests set up and check data with it) needs DJANGO_ALLOW_ASYNC_UNSAFE meanwhile;
    the setting is undone, and the loop closed, when the module's tests are done.
    """
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def roles(transactional_db: None) -> None:
    ensure_roles()


@pytest.fixture(scope="module", autouse=True)
def roles_left_in_place(django_db_setup: None, django_db_blocker) -> Iterator[None]:  # noqa: ANN001
    """Put the groups back after these tests' flushes, for whatever runs next (--reuse-db)."""
    yield
    with django_db_blocker.unblock():
        ensure_roles()


@pytest.fixture
def tracking_base(settings, live_server) -> str:  # noqa: ANN001
    """Generated URLs point at the live server, so a copied URL can really be requested."""
    settings.TRACKING_BASE_URL = live_server.url
    return live_server.url


@pytest.fixture
def login(browser: Browser, live_server, roles: None) -> Iterator[Callable[..., Page]]:  # noqa: ANN001
    """Log a user in through the admin's login form in a fresh browser context."""
    contexts = []

    def log_in(user) -> Page:  # noqa: ANN001
        context = browser.new_context(
            base_url=live_server.url, viewport={"width": 1400, "height": 1000}
        )
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.goto("/admin/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url("**/admin/")
        return page

    yield log_in
    for context in contexts:
        context.close()


@pytest.fixture
def wide_page(browser: Browser, live_server, roles: None) -> Iterator[Callable[..., Page]]:  # noqa: ANN001
    """A fresh 1440×900 window (the size issue #20 was reported at), logged in as ``user``
    through the admin's login form, or not logged in when ``user`` is None."""
    contexts = []

    def open_page(user=None) -> Page:  # noqa: ANN001
        context = browser.new_context(
            base_url=live_server.url, viewport={"width": 1440, "height": 900}
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        if user is not None:
            log_in_as(page, user.username)
        return page

    yield open_page
    for context in contexts:
        context.close()


def log_in_as(page: Page, username: str, password: str = PASSWORD) -> None:
    page.goto("/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
