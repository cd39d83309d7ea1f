"""Things every tab owes a first-time user: a one-line how-to, examples, labelled controls, and
an About panel that says what is running."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.ui import assert_no_page_errors, open_app, open_tab, save_screenshot, unlabelled_controls

WORK_TABS = ["Chat", "Compare", "Highlights"]


def _tabs(page) -> list[str]:
    return [name.strip() for name in page.get_by_role("tab").all_inner_texts()]


def test_every_tab_has_a_how_to_examples_and_labelled_controls(page, app_url):
    open_app(page, app_url)
    present = [name for name in WORK_TABS if name in _tabs(page)]
    assert present[:2] == ["Chat", "Compare"], _tabs(page)
    for name in present:
        open_tab(page, name)
        panel = page.get_by_role("tabpanel").locator("visible=true").first
        expect(panel.locator(".prose").first).to_be_visible()  # the how-to line heads every tab
        expect(panel.get_by_text("Example").first).to_be_visible()
        assert not unlabelled_controls(page), f"{name}: controls without a label: {unlabelled_controls(page)}"
    assert_no_page_errors(page)


def test_about_names_model_device_dtype_and_versions(page, app_url):
    open_app(page, app_url)
    open_tab(page, "About")
    about = page.get_by_role("tabpanel").locator("visible=true").first
    for text in ("VLM Studio", "Default model", "Device:", "cpu (fp32)", "Ready", "gradio 6.", "transformers 5."):
        expect(about).to_contain_text(text)
    save_screenshot(page, "about")
    assert_no_page_errors(page)
