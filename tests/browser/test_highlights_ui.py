"""The Highlights tab in a browser: a short generated video in; progress, the score plot, the
segment table, a reel that plays, and downloads that download."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from tests import media_factory
from tests.browser.ui import PHONE, assert_no_page_errors, open_app, open_tab, save_screenshot, set_slider

PROGRESS = "#hl-summary .progress-text, #hl-summary .progress-level, #hl-timeline .progress-text, .eta-bar"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """30 s of generated video with sound: six 5 s windows on the tiny model."""
    return media_factory.make_video(tmp_path_factory.mktemp("hl") / "clip.mp4", seconds=30, fps=10,
                                    size=(160, 120), audio=True)


@pytest.fixture()
def highlights_page(page, app_url):
    open_app(page, app_url)
    tabs = [name.strip() for name in page.get_by_role("tab").all_inner_texts()]
    assert "Highlights" in tabs, f"the Highlights tab is not in the app yet (components/layout.py): tabs {tabs}"
    open_tab(page, "Highlights")
    page.locator("#hl-criteria textarea").wait_for(state="visible")
    return page


def _saw_progress(page, timeout: float) -> bool:
    """Poll for Gradio's progress display while the job runs (it disappears when it ends)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if page.locator(PROGRESS).count():
            return True
        if page.locator("#hl-reel video").count():
            return False
        time.sleep(0.05)
    return False


def _fill_in(page, clip, criteria: str, window: int, target: int) -> None:
    """Upload ``clip`` and set the criteria, the window length and the target length."""
    page.locator("#hl-video input[type=file]").set_input_files(str(clip))
    expect(page.locator("#hl-video video")).to_be_visible()
    page.locator("#hl-criteria textarea").fill(criteria)
    set_slider(page, "Window length (s)", window)
    box = page.get_by_label("Target reel length (s)")
    box.fill(str(target))
    box.press("Tab")


def test_find_highlights_in_a_short_video(highlights_page, clip):
    page = highlights_page
    _fill_in(page, clip, "the colours change quickly", window=5, target=10)

    page.locator("#hl-run").click()
    assert _saw_progress(page, timeout=60), "no progress was shown while the video was analysed"

    expect(page.locator("#hl-summary")).to_contain_text("segments", timeout=120_000)
    expect(page.locator("#hl-summary")).to_contain_text("6 windows of 5 s")
    expect(page.locator("#hl-timeline svg")).to_be_visible()  # the score plot
    cells = page.locator("#hl-table").get_by_role("gridcell")  # start, end, score, keep, on a cut per segment
    expect(cells.first).to_be_visible()
    assert cells.count() >= 5 and cells.count() % 5 == 0, cells.all_inner_texts()
    float(cells.first.inner_text())  # a start time, in seconds

    reel = page.locator("#hl-reel video")
    expect(reel).to_be_visible()
    page.wait_for_function("document.querySelector('#hl-reel video').readyState >= 1", timeout=30_000)
    duration = reel.evaluate("video => video.duration")
    assert 1 <= duration <= 15, f"the reel is {duration} s long for a 10 s target"

    downloads = page.locator("#hl-files")
    for kind in (".json", ".srt", ".edl", ".xspf"):  # Gradio shows the name and the extension apart
        expect(downloads).to_contain_text(kind)
    with page.expect_download() as download_info:
        downloads.locator("tr").filter(has_text=".srt").locator("a").first.click()
    saved = download_info.value.path()
    assert saved and open(saved, encoding="utf-8").read().strip(), "the SRT download is empty"

    save_screenshot(page, "highlights")

    page.set_viewport_size(PHONE)
    page.wait_for_timeout(300)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "Highlights scrolls sideways"
    save_screenshot(page, "highlights-phone")
    assert_no_page_errors(page)


def test_a_vertical_reel_that_follows_the_action_with_shots_and_sound(highlights_page, tmp_path):
    """Issue 15 in the tab: shot windows, the sound's share, a 9:16 follow reel and its crop preview."""
    page = highlights_page
    clip = media_factory.make_moving_object_video(tmp_path / "move.mp4", 16, fps=10)
    _fill_in(page, clip, "the square moves", window=4, target=8)
    page.locator("#hl-windows").get_by_label("shots").check()
    page.locator("#hl-snap").get_by_label("shots").check()
    set_slider(page, "Sound's share of the score", 0.5)
    page.locator("#hl-aspect").get_by_label("9:16").check()
    page.locator("#hl-reframe").get_by_label("follow").check()

    page.locator("#hl-run").click()
    expect(page.locator("#hl-summary")).to_contain_text("1080x1920 (9:16, follow)", timeout=120_000)
    expect(page.locator("#hl-summary")).to_contain_text("sound weighs 0.5")
    expect(page.locator("#hl-summary")).to_contain_text("shot windows")
    expect(page.locator("#hl-timeline svg .audio")).to_have_count(1)
    expect(page.locator("#hl-crop-preview img")).to_have_count(4, timeout=30_000)
    page.wait_for_function("document.querySelector('#hl-reel video').readyState >= 1", timeout=30_000)
    size = page.locator("#hl-reel video").evaluate("video => [video.videoWidth, video.videoHeight]")
    assert size == [1080, 1920], size
    save_screenshot(page, "highlights-vertical")
    assert_no_page_errors(page)
