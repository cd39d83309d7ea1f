"""Real-browser fixtures: Debian's chromium driven by Playwright against the app served in-process.

Contract:
- ``chromium`` is ``/usr/bin/chromium`` (or ``$VLMS_CHROMIUM``). It is never downloaded; when it
  is missing and the tests run as root, Debian's package is installed with apt-get
  (``tests/browser/chromium.py``), so the README's test command passes on a fresh machine.
  Otherwise the tests FAIL with the install command; they do not skip: a browser suite that
  silently skips proves nothing.
- ``app_url`` serves ONE app for all the browser tests (package scope: closed after them) on
  ``chatty_smolvlm``: the tiny random SmolVLM2 with its end-of-sequence tokens suppressed, so an
  answer runs until max new tokens (~2,000 tokens in ~10 s on 2 cores). That is long enough to
  watch the text grow and press Stop mid-stream; short answers come from lowering max new
  tokens in the page.
- ``page`` is a fresh page (1366x768, a laptop) of one browser launched with a fresh profile.
  Its console messages and uncaught page errors are recorded; when the test fails, a screenshot
  and the console log are kept under ``test-artifacts/`` (``screenshots/FAILED-<test>.png``,
  ``console/<test>.log``). Tests save their per-tab screenshots with ``ui.save_screenshot``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.app_server import serve
from tests.browser.chromium import ChromiumMissing, ensure_chromium
from tests.browser.ui import ARTIFACTS, CONSOLE_LOGS, LAPTOP, SCREENSHOTS

CHROMIUM = Path(os.environ.get("VLMS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",  # CI runs as root in a container, where the sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # no calls home: the tests must work with no network
    "--disable-component-update",
    "--disable-sync",
]
DEFAULT_TIMEOUT_MS = 30_000


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Expose each phase's report on the item, so fixtures can tell whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    try:
        return ensure_chromium(CHROMIUM, ARTIFACTS)
    except ChromiumMissing as missing:
        pytest.fail(str(missing), pytrace=False)


@pytest.fixture(scope="package")
def browser(chromium_path, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")  # fresh: no cached pages, no cookies
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(chromium_path), headless=True, args=CHROMIUM_ARGS,
            viewport=LAPTOP, accept_downloads=True,
        )
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="session")
def chatty_smolvlm(endless_pair) -> Path:
    """The tiny SmolVLM2 that never ends an answer on its own (tests/tiny_models.never_ending)."""
    return endless_pair[0]


@pytest.fixture(scope="package")
def served_app(chatty_smolvlm):
    with serve(chatty_smolvlm) as (url, demo):
        yield url, demo


@pytest.fixture(scope="package")
def app_url(served_app) -> str:
    return served_app[0]


@pytest.fixture()
def page(browser, request):
    _evidence_paths(request.node.name)[0].unlink(missing_ok=True)  # a stale failure of an earlier run
    _evidence_paths(request.node.name)[1].unlink(missing_ok=True)
    page = browser.new_page()
    page.set_viewport_size(LAPTOP)
    page.console_lines = []
    page.page_errors = []
    page.on("console", lambda message: page.console_lines.append(f"[{message.type}] {message.text}"))
    page.on("pageerror", lambda error: page.page_errors.append(str(error)))
    yield page
    failed = any(getattr(getattr(request.node, f"rep_{when}", None), "failed", False) for when in ("setup", "call"))
    if failed:
        _keep_failure_evidence(page, request.node.name)
    page.close()


def _evidence_paths(test_name: str) -> tuple[Path, Path]:
    name = re.sub(r"[^\w.-]+", "_", test_name)
    return SCREENSHOTS / f"FAILED-{name}.png", CONSOLE_LOGS / f"{name}.log"


def _keep_failure_evidence(page, test_name: str) -> None:
    screenshot, console_log = _evidence_paths(test_name)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    CONSOLE_LOGS.mkdir(parents=True, exist_ok=True)
    try:
        page.screenshot(path=str(screenshot), full_page=True)
    except Exception as error:  # a crashed page still gets its console log written
        page.console_lines.append(f"[screenshot failed] {error}")
    lines = page.console_lines + [f"[pageerror] {error}" for error in page.page_errors]
    console_log.write_text("\n".join(lines) + "\n")

