"""The Chat tab as a person uses it: upload, Enter, watch the answer stream, Stop, follow up.

Also the layout at a laptop and a phone width (screenshots kept as evidence).
"""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.ui import (
    ASSETS,
    LAPTOP,
    PHONE,
    assert_no_page_errors,
    generate_threads,
    open_app,
    record_lengths,
    save_screenshot,
    set_slider,
    steady_length,
    texts,
    wait_for,
    wait_for_stream,
)

BOT = '#chat-bot [data-testid="bot"]'
USER = '#chat-bot [data-testid="user"]'


def _last_answer(page) -> str:
    answers = texts(page.locator(BOT))
    return answers[-1] if answers else ""


def _send(page, text: str) -> None:
    box = page.locator("#chat-input textarea")
    box.fill(text)
    box.press("Enter")  # Enter sends (Shift+Enter would add a line)


def test_upload_send_stream_stop_and_follow_up(page, app_url):
    open_app(page, app_url)
    set_slider(page, "Max new tokens", 2000)  # the chatty model talks until this limit: ~10 s

    page.locator("#chat-input input[type=file]").set_input_files(str(ASSETS / "scene.jpg"))
    expect(page.locator("#chat-input img")).to_be_visible()  # the thumbnail of the attachment
    record_lengths(page, BOT)
    _send(page, "Tell me a long story about this picture.")
    expect(page.locator(f"{USER} img")).to_be_visible()  # the image went into the conversation
    expect(page.locator(USER).last).to_contain_text("Tell me a long story")

    wait_for_stream(page, steps=3, timeout=60)  # the answer grows step by step, not all at once

    # The click event itself: Playwright's usual wait for a "stable" button needs idle animation
    # frames, which a page re-rendering a stream on a loaded 2-core machine may not give for long.
    page.locator("#chat-stop").dispatch_event("click")
    steady_length(lambda: _last_answer(page), quiet=1.5, timeout=10)
    wait_for(lambda: not generate_threads(), timeout=5, message="the generation thread kept running after Stop")
    expect(page.locator("#chat-stats")).to_contain_text("stopped")  # the user sees why it ended
    stats = page.locator("#chat-stats").inner_text()
    generated = int(re.search(r"(\d+) new tokens", stats).group(1))
    assert 0 < generated < 2000 and "limit" not in stats, f"Stop did not land mid-stream: {stats}"

    set_slider(page, "Max new tokens", 12)
    _send(page, "And what colours are there?")
    expect(page.locator(BOT)).to_have_count(2)
    expect(page.locator("#chat-stats")).to_contain_text("12 new tokens", timeout=60_000)
    assert _last_answer(page).strip(), "the follow-up got an empty answer"
    assert page.locator(USER).filter(has_text="And what colours are there?").count() == 1
    save_screenshot(page, "chat")
    assert_no_page_errors(page)


def test_layout_fits_a_laptop_and_a_phone(page, app_url):
    """The message box is on the first screen of a laptop; nothing overflows sideways on a phone."""
    open_app(page, app_url)
    box = page.locator("#chat-input").bounding_box()
    assert box["y"] + box["height"] <= LAPTOP["height"], f"message box below the fold on a laptop: {box}"
    save_screenshot(page, "chat-laptop", full_page=False)

    page.set_viewport_size(PHONE)
    page.wait_for_timeout(300)  # let the layout settle
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways on a phone ({width} px wide)"
    buttons = [page.locator(f"#chat-{name}").bounding_box() for name in ("stop", "retry", "undo", "clear")]
    assert len({round(b["y"]) for b in buttons}) == 1, "Stop/Retry/Undo/Clear should share one row on a phone"
    save_screenshot(page, "chat-phone")
    assert_no_page_errors(page)
