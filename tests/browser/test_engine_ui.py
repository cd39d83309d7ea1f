"""The app pointed at a real vLLM server (``--engine-url``), used in a real browser: a video
question is answered by the server's model and the page shows the frames that model saw."""

from __future__ import annotations

from playwright.sync_api import expect

from pipelines import engines
from tests.app_server import serve
from tests.browser.ui import assert_no_page_errors, open_app, save_screenshot
from tests.conftest import VLLM_SERVED_NAME

BOT = '#chat-bot [data-testid="bot"]'


def test_a_video_question_on_the_vllm_engine_shows_its_answer_and_frames(page, vllm_server, video_20s):
    model = engines.server_model_key(VLLM_SERVED_NAME)
    with serve(model, engine_url=vllm_server.url) as (url, _demo):  # the server's model is the default
        open_app(page, url)
        expect(page.locator("#chat-model input")).to_have_value(f"{VLLM_SERVED_NAME} (server)")
        page.locator("#chat-input input[type=file]").set_input_files(str(video_20s))
        page.locator("#chat-input .thumbnail-item").first.wait_for(state="attached")
        box = page.locator("#chat-input textarea")
        box.fill("What happens in this video?")
        box.press("Enter")
        expect(page.locator(BOT).last).not_to_be_empty(timeout=120_000)
        expect(page.locator("#chat-stats")).to_contain_text("model server", timeout=120_000)
        # SmolVLM2 samples 1 fps: the 20 frames the server's model was given, with their times.
        expect(page.locator("#chat-frames img")).to_have_count(20, timeout=30_000)
        expect(page.locator("#chat-frames")).to_contain_text("0:00.00")  # captions: the frames' times
        save_screenshot(page, "chat-on-vllm-engine")
        assert_no_page_errors(page)
