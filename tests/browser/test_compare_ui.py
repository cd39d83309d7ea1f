"""The Compare tab in a browser: three images asked about together, then two models side by side."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.ui import (
    ASSETS,
    PHONE,
    assert_no_page_errors,
    open_app,
    open_tab,
    save_screenshot,
    set_slider,
)

IMAGES = [ASSETS / "scene.jpg", ASSETS / "scene_changed.jpg", ASSETS / "chart.png"]


@pytest.fixture()
def compare_page(page, app_url):
    open_app(page, app_url)
    open_tab(page, "Compare")
    page.locator("#compare-question textarea").wait_for(state="visible")
    return page


def _choose_model(page, elem_id: str, value: str) -> None:
    """Type a local checkpoint path into a model picker (it accepts custom values)."""
    box = page.locator(f"#{elem_id} input")
    box.fill(value)
    box.press("Enter")
    box.blur()


def test_three_images_then_two_models(compare_page, tiny_plm):
    page = compare_page
    page.locator("#compare-images input[type=file]").set_input_files([str(path) for path in IMAGES])
    gallery = page.locator("#compare-gallery")
    for label in ("Image 1", "Image 2", "Image 3"):
        expect(gallery).to_contain_text(label)  # named on screen as the prompt names them

    set_slider(page, "Max new tokens", 16)
    page.locator("#compare-question textarea").fill("What differs between these images?")
    page.locator("#compare-ask").click()
    expect(page.locator("#compare-stats")).to_contain_text("16 new tokens", timeout=60_000)
    expect(page.locator("#compare-stats")).to_contain_text("Image 3 = chart.png")
    assert page.locator("#compare-answer textarea").input_value().strip(), "no answer about the three images"

    _choose_model(page, "compare-model-b", str(tiny_plm))
    page.locator("#compare-models").click()
    for pane in ("a", "b"):
        expect(page.locator(f"#compare-stats-{pane}")).to_contain_text("new tokens", timeout=90_000)
    expect(page.locator("#compare-stats-b")).to_contain_text("tiny-plm")
    wait_text = lambda pane: page.locator(f"#compare-answer-{pane} textarea").input_value().strip()  # noqa: E731
    assert wait_text("a") and wait_text("b"), "a pane of the two-model view stayed empty"
    save_screenshot(page, "compare")

    page.set_viewport_size(PHONE)
    page.wait_for_timeout(300)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "Compare scrolls sideways"
    save_screenshot(page, "compare-phone")
    assert_no_page_errors(page)
