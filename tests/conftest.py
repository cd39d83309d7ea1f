"""Shared fixtures. Everything runs offline: the hub is never contacted."""

from __future__ import annotations

import os
import tempfile

# Must be set before transformers/gradio are imported anywhere in the test session.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
_GRADIO_TEMP = tempfile.mkdtemp(prefix="vlms-gradio-")
os.environ["GRADIO_TEMP_DIR"] = _GRADIO_TEMP
# Score, feature and transcript caches of in-process apps go here, never to the user's home.
_CACHE = tempfile.mkdtemp(prefix="vlms-cache-")
os.environ.setdefault("VLMS_CACHE_DIR", _CACHE)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import shutil  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests import media_factory, tiny_models  # noqa: E402


# A test that uses one of these serves the app over HTTP, drives a browser, starts vLLM or runs the
# highlights CLI end to end: seconds each, so it is left out of the fast tier (pytest.ini, README
# "Tests"). Other slow tests say so themselves (@pytest.mark.slow, or pytestmark in their module).
SLOW_FIXTURES = frozenset({"app", "app_url", "client", "served_app", "browser", "page", "cli_run", "vllm_server"})


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def _clean_gradio_temp_dir():
    """Uploads and outputs of the in-process servers go to one temp dir, removed at the end."""
    yield
    shutil.rmtree(_GRADIO_TEMP, ignore_errors=True)
    shutil.rmtree(_CACHE, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _session_temp_dir(tmp_path_factory):
    """This process's temp dir, for the session, is one of pytest's (kept and cleaned up like
    tmp_path): gradio_client stages every file it downloads in a new directory under the temp
    dir and leaves it behind, empty (about 1,700 per run of the suite)."""
    previous = tempfile.tempdir
    tempfile.tempdir = str(tmp_path_factory.mktemp("tempdir"))
    yield
    tempfile.tempdir = previous


@pytest.fixture(scope="session")
def tiny_smolvlm(tmp_path_factory) -> Path:
    return tiny_models.build_tiny_smolvlm2(tmp_path_factory.mktemp("tiny-smolvlm2"))


@pytest.fixture(scope="session")
def tiny_plm(tmp_path_factory) -> Path:
    return tiny_models.build_tiny_perception_lm(tmp_path_factory.mktemp("tiny-plm"))


@pytest.fixture(scope="session")
def endless_pair(tiny_smolvlm, tiny_plm, tmp_path_factory) -> tuple[Path, Path]:
    """Both tiny checkpoints, never ending an answer on their own (tests of Stop)."""
    return (tiny_models.never_ending(tiny_smolvlm, tmp_path_factory.mktemp("endless-smolvlm2")),
            tiny_models.never_ending(tiny_plm, tmp_path_factory.mktemp("endless-plm")))


@pytest.fixture(scope="session", params=["smolvlm", "plm"])
def tiny_model(request) -> Path:
    """Both real architectures, one after the other."""
    return request.getfixturevalue("tiny_smolvlm" if request.param == "smolvlm" else "tiny_plm")


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def sample_image(media_dir) -> Path:
    return media_factory.make_image(media_dir / "scene.png", mode="RGB", size=(96, 64), fmt="PNG")


@pytest.fixture(scope="session")
def second_image(media_dir) -> Path:
    return media_factory.make_image(media_dir / "other.jpg", mode="RGB", size=(64, 80), fmt="JPEG")


@pytest.fixture(scope="session")
def short_video(media_dir) -> Path:
    return media_factory.make_video(media_dir / "short.mp4", seconds=6, fps=10, size=(128, 96), audio=True)


@pytest.fixture(scope="session")
def video_20s(media_dir) -> Path:
    return media_factory.make_video(media_dir / "twenty.mp4", seconds=20, fps=15, size=(128, 96), audio=True)


@pytest.fixture(scope="session")
def tiny_whisper(tmp_path_factory) -> Path:
    """A ~2 MB random Whisper (real architecture) with word-timestamp support."""
    return tiny_models.build_tiny_whisper(tmp_path_factory.mktemp("tiny-whisper"))


# What the speech video says, and when (seconds): silence before, between and after.
SPEECH_LINES = ((2.0, "The cat sees the big red ball in the park."), (8.0, "Thank you all for coming."))
SPEECH_SECONDS = 12.0


@pytest.fixture(scope="session")
def speech_video(media_dir) -> Path:
    """12 s whose soundtrack is espeak-ng speech at ``SPEECH_LINES`` times and silence elsewhere."""
    return media_factory.make_speech_video(media_dir / "speech.mp4", SPEECH_SECONDS, SPEECH_LINES)


@pytest.fixture(scope="session")
def speech_spans() -> list[tuple[float, float]]:
    """(start, end) of each line of ``speech_video``."""
    return media_factory.speech_spans(SPEECH_LINES)


@pytest.fixture(scope="session")
def silent_video(media_dir) -> Path:
    return media_factory.make_silent_video(media_dir / "silent.mp4", 6)


@pytest.fixture(scope="session")
def mute_video(media_dir) -> Path:
    """No audio stream at all."""
    return media_factory.make_video(media_dir / "mute.mp4", seconds=4, fps=10, size=(128, 96), audio=False)


@pytest.fixture()
def app_url(app) -> str:
    """The URL of the module's running app; modules that serve with ``app`` = (url, demo) get it
    from there, others define their own ``app_url``."""
    return app[0]


@pytest.fixture()
def client(app_url):
    """A gradio_client connected to the module's running app, closed after the test."""
    from gradio_client import Client

    connection = Client(app_url, verbose=False)
    yield connection
    connection.close()


VLLM_SERVED_NAME = "tiny-smolvlm2"


@pytest.fixture(scope="session")
def tiny_vllm_model(tmp_path_factory) -> Path:
    return tiny_models.build_tiny_smolvlm2_vllm(tmp_path_factory.mktemp("tiny-smolvlm2-vllm"))


@pytest.fixture(scope="session")
def vllm_server(tiny_vllm_model, tmp_path_factory):
    """ONE real vLLM server (serving the tiny SmolVLM2 as ``VLLM_SERVED_NAME``) for the session; SIGTERM (its whole process group) at the end.
    vLLM is installed first when missing (.ci/install_vllm: idempotent, seconds when ready); a
    failed install fails the tests, with its output."""
    from pipelines.engines.vllm_server import VllmServer
    from tests.app_process import free_port

    install = subprocess.run([str(Path(__file__).resolve().parents[1] / ".ci" / "install_vllm")], capture_output=True, text=True, timeout=1800)
    if install.returncode != 0:
        pytest.fail(f"vLLM could not be installed (.ci/install_vllm):\n{install.stdout[-3000:]}{install.stderr[-3000:]}")
    log = tmp_path_factory.mktemp("vllm") / "vllm.log"
    server = VllmServer(tiny_vllm_model, free_port(), name=VLLM_SERVED_NAME, log_path=log)
    server.start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
