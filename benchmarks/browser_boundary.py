"""What a person sees: a real browser (Debian's chromium, Playwright) on the running app, against
the API figures of the same requests.

For one image and a 20 s video (20 frames at 1 fps) in the Chat tab:
- time from pressing Enter to the first answer text on screen, vs the API's time to first update;
- answer characters per second on screen, vs characters per second reaching an API client.
Times on screen are taken IN the page (``performance.now()`` at the keypress, and at every DOM
change of the answer, by a MutationObserver), so a slow test process cannot blur them. Reported,
not targeted: the ratio says what the browser adds on top of the API.

    python -m benchmarks.run --only browser [--quick]
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from .boundary import Timing, _video, app_chat
from .boundary import _image as image
from .common import Row, chatty, stand_in

NEW_TOKENS = 48
BOT = '#chat-bot [data-testid="bot"]'

# Records (ms since the keypress, length of the newest answer) at every change of the answer.
_OBSERVE_JS = """
(selector) => {
  const before = document.querySelectorAll(selector).length;
  window.__vlmsMarks = [];
  window.__vlmsObserver = new MutationObserver(() => {
    const all = document.querySelectorAll(selector);
    if (all.length <= before || window.__vlmsT0 === undefined) return;
    const n = all[all.length - 1].innerText.trim().length, marks = window.__vlmsMarks;
    if (n && (!marks.length || marks[marks.length - 1][1] !== n))
      marks.push([performance.now() - window.__vlmsT0, n]);
  });
  window.__vlmsObserver.observe(document.body, {subtree: true, childList: true, characterData: true});
}
"""


def _image() -> Path:
    return image("photo-640x480.jpg", size=(640, 480))


def on_screen(page, url: str, files: list[Path], question: str = "Describe this.") -> Timing:
    """One chat request typed into the page; the figures as the page showed them."""
    from tests.browser.ui import open_app, set_slider, steady_length, wait_for

    open_app(page, url)
    set_slider(page, "Max new tokens", NEW_TOKENS)
    page.locator("#chat-input input[type=file]").set_input_files([str(f) for f in files])
    # The attachment's thumbnail (an image, or an icon for a video) shows the upload is there.
    page.locator("#chat-input .thumbnail-item").first.wait_for(state="attached")
    page.evaluate(_OBSERVE_JS, BOT)
    box = page.locator("#chat-input textarea")
    box.fill(question)
    page.evaluate("window.__vlmsT0 = performance.now()")
    box.press("Enter")
    stats = page.locator("#chat-stats")
    wait_for(lambda: "first token" in stats.inner_text(), timeout=600, message="no answer on screen")
    steady_length(stats.inner_text, quiet=2.0, timeout=600)  # the stats line settles when the answer ends
    marks = page.evaluate("window.__vlmsMarks")
    if not marks:
        raise RuntimeError("no answer text ever appeared on screen")
    first_ms, first_len = marks[0]
    last_ms, last_len = marks[-1]
    span = (last_ms - first_ms) / 1000
    chars = (last_len - first_len) / span if span > 0 else float("nan")
    return Timing(first_ms / 1000, float("nan"), 0, len(marks), chars)


def run(device: str = "cpu", quick: bool = False) -> list[Row]:
    from gradio_client import Client
    from playwright.sync_api import sync_playwright

    from tests.app_process import app_process
    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
    from tests.browser.ui import LAPTOP

    model_dir = chatty(stand_in("256m", device))
    rounds = 1 if quick else 3
    cases = [("1 image 640x480", [_image()]), ("20 s video, 20 frames", [_video(20)])]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as work:
        env = {"GRADIO_TEMP_DIR": str(Path(work) / "gradio")}
        with app_process(model_dir, Path(work) / "app.log", device=device, dtype="bf16", env=env) as url, \
                sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            client = Client(url, verbose=False, download_files=False)  # as in boundary.py
            for case, files in cases:
                app_chat(client, files, NEW_TOKENS)  # warm-up: model loaded, video decoded once
                screen, api = [], []
                for _ in range(rounds):
                    page = browser.new_page(viewport=LAPTOP)
                    screen.append(on_screen(page, url, files))
                    page.close()
                    api.append(app_chat(client, files, NEW_TOKENS))
                rows += _rows(case, screen, api)
            client.close()
            browser.close()
    return rows


def _rows(case: str, screen: list[Timing], api: list[Timing]) -> list[Row]:
    ttft_screen = statistics.median(t.ttft_s for t in screen)
    ttft_api = statistics.median(t.ttft_s for t in api)
    cps_screen = statistics.median(t.chars_per_s for t in screen)
    cps_api = statistics.median(t.chars_per_s for t in api)
    return [
        Row("browser", f"Enter -> first text on screen, {case}", ttft_screen, ttft_api, "s",
            ttft_api / ttft_screen, "reported (vs API)", None,
            f"{len(screen)} rounds; on-screen steps {statistics.median(t.updates for t in screen):.0f}"),
        Row("browser", f"answer chars/s on screen, {case}", cps_screen, cps_api, "chars/s",
            cps_screen / cps_api if cps_api else None, "reported (vs API)", None),
    ]


if __name__ == "__main__":
    from .common import print_table

    print_table(run(quick=True))
