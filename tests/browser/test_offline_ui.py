"""First run with no network: the app still starts, says which model could not be fetched and how
to use a local checkpoint, and a question gets that clear message instead of a hang or a crash."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.app_process import free_port
from tests.browser.ui import ROOT, assert_no_page_errors, open_app, save_screenshot

MODEL = "smolvlm2-256m"  # the CPU default: a registry model, which needs the hub the tests never reach
START_TIMEOUT_S = 90



@pytest.fixture(scope="module")
def offline_app_url(tmp_path_factory):
    """``python app.py`` itself, as a user starts it, with no network and an empty model cache."""
    home = tmp_path_factory.mktemp("offline-home")
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(home / "hf"), "GRADIO_TEMP_DIR": str(home / "gradio"),
           "VLMS_DEVICE": "cpu", "VLMS_DTYPE": "fp32"}
    log = (home / "app.log").open("w")
    process = subprocess.Popen([sys.executable, "app.py", "--model", MODEL, "--port", str(port)], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(url, process, home / "app.log")
        yield url
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def _wait_until_serving(url: str, process, log_path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, f"app.py exited with {process.returncode}:\n{log_path.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"app.py did not serve within {START_TIMEOUT_S} s:\n{log_path.read_text()[-3000:]}")


def test_offline_first_run_shows_the_banner_and_answers_with_the_fix(page, offline_app_url):
    open_app(page, offline_app_url)
    banner = page.locator("#banner")
    expect(banner).to_contain_text("could not be loaded", timeout=30_000)  # the load fails in the background
    expect(banner).to_contain_text("SmolVLM2 256M")
    expect(banner).to_contain_text("HuggingFaceTB/SmolVLM2-256M-Video-Instruct")
    expect(banner).to_contain_text("python app.py --model")

    box = page.locator("#chat-input textarea")
    box.fill("Hello?")
    box.press("Enter")
    toast = page.locator(".toast-body").first
    expect(toast).to_be_visible(timeout=30_000)
    expect(toast).to_contain_text("python app.py --model")
    assert "Traceback" not in toast.inner_text()
    page.wait_for_timeout(500)  # the toast fades in
    save_screenshot(page, "first-run-offline")
    assert_no_page_errors(page)
