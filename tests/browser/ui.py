"""Helpers the browser tests share: where evidence goes, and how a user's actions look in the DOM.

Selectors lean on the ``elem_id``s the tabs give their key components (``#chat-input``,
``#chat-bot``, ``#compare-answer-a``...) and on accessible names (tab names, slider labels), never
on Gradio's generated class names, so a Gradio upgrade does not silently break them.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "assets"
ARTIFACTS = Path(os.environ.get("VLMS_TEST_ARTIFACTS", ROOT / "test-artifacts"))
SCREENSHOTS = ARTIFACTS / "screenshots"
CONSOLE_LOGS = ARTIFACTS / "console"
LAPTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}  # an iPhone 12-15 in portrait


def save_screenshot(page, name: str, full_page: bool = True) -> Path:
    """Keep ``test-artifacts/screenshots/<name>.png``: the evidence that a tab works."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def open_app(page, url: str) -> None:
    """Load the page and wait until Gradio has rendered the Chat tab (the first one)."""
    page.goto(url)
    page.locator("#chat-input textarea").wait_for(state="visible")


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def visible(locator):
    """Only the copy on the open tab (Chat and Compare both have e.g. a 'Max new tokens' slider)."""
    return locator.locator("visible=true")


def set_slider(page, label: str, value: float) -> None:
    """Type ``value`` into the number box of the visible slider called ``label``."""
    box = visible(page.get_by_label(f"number input for {label}")).first
    box.fill(str(value))
    box.press("Tab")  # the slider commits its value on blur


def texts(locator) -> list[str]:
    return [text.strip() for text in locator.all_inner_texts()]


def wait_for(condition: Callable[[], bool], timeout: float, message: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"{message} (waited {timeout:g} s)")


_RECORD_JS = """
(selector) => {
  const last = () => {
    const all = document.querySelectorAll(selector);
    return all.length ? all[all.length - 1].innerText.length : 0;
  };
  window.__vlmsLengths = [];
  new MutationObserver(() => {
    const n = last(), seen = window.__vlmsLengths;
    if (!seen.length || seen[seen.length - 1] !== n) seen.push(n);
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}
"""


def record_lengths(page, selector: str) -> None:
    """From now on, note the text length of the last element matching ``selector`` at EVERY DOM
    change (in the page, so a slow or busy test process cannot miss the steps of a stream)."""
    page.evaluate(_RECORD_JS, selector)


def wait_for_stream(page, steps: int, timeout: float) -> list[int]:
    """Wait until the recorded text has grown ``steps`` times; returns the lengths seen so far."""
    deadline = time.monotonic() + timeout
    seen: list[int] = []
    while time.monotonic() < deadline:
        seen = page.evaluate("window.__vlmsLengths")
        if sum(1 for a, b in zip(seen, seen[1:]) if b > a) >= steps:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"the text grew in fewer than {steps} steps within {timeout:g} s: lengths {seen}")


def steady_length(read: Callable[[], str], quiet: float, timeout: float) -> int:
    """Wait until ``read()`` stops changing for ``quiet`` seconds; returns its final length."""
    deadline = time.monotonic() + timeout
    last, since = read(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return len(last)
    raise AssertionError(f"the text was still changing after {timeout:g} s")


def generate_threads() -> list[threading.Thread]:
    """Generation worker threads of the in-process server (pipelines.generation names them)."""
    return [thread for thread in threading.enumerate() if thread.name == "vlms-generate"]


def assert_no_page_errors(page) -> None:
    assert not page.page_errors, f"uncaught errors in the page: {page.page_errors}"


# Every form control a person can use must have an accessible name: a <label>, aria-label,
# aria-labelledby, or (HTML-AAM's last resort, which browsers honour) a placeholder. Screen
# readers read it out; without one a control is a blank box to them.
_UNLABELLED_JS = """
() => [...document.querySelectorAll('input, textarea, select, button')]
  .filter(el => el.type !== 'hidden' && el.type !== 'file' && el.offsetParent !== null)
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !el.getAttribute('aria-labelledby') && !el.closest('label') && !el.placeholder
                && !(el.tagName === 'BUTTON' && el.innerText.trim()))
  .map(el => el.outerHTML.slice(0, 160))
"""


def unlabelled_controls(page) -> list[str]:
    """Visible controls of the open tab that have no accessible name."""
    return page.evaluate(_UNLABELLED_JS)
