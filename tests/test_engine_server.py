"""The server engine against a REAL vLLM OpenAI server (CPU build, tiny SmolVLM2 with head_dim 32).

The server is started once for the session from the project's own files
(pipelines.engines.vllm_server, the venv made by .ci/install_vllm) and stopped with SIGTERM at the
end. A missing vLLM is a failure, not a skip: the README's test command installs it.
Also here, without a server: the failures users see (unreachable, not served, refused, timeout,
PerceptionLM local-only) and that the API key never shows.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from pipelines import engines
from pipelines.chat import ChatRequest, start_chat
from pipelines.compare import side_by_side_requests
from pipelines.engines.errors import (
    EngineRefusedError,
    EngineTimeoutError,
    EngineUnreachableError,
    LocalOnlyModelError,
    ModelNotServedError,
)
from pipelines.engines.server import ServedModel, ServerEngine, check_servable
from pipelines.engines.vllm_server import VllmServer
from pipelines.generation import GenerationSettings
from pipelines.highlights.hearing import NOTHING_SAID
from pipelines.highlights.pipeline import SCORING_SYSTEM_PROMPT, probe, scoring_question
from pipelines.highlights.windows import iter_window_clips, make_windows
from pipelines.limits import LIMITS
from pipelines.messages import VIDEO, Attachment, Turn
from pipelines.registry import PERCEPTION_LM
from pipelines.runtime import Runtime
from pipelines.side_by_side import stream_side_by_side
from tests.app_process import free_port
from tests import media_factory

SERVED = "tiny-smolvlm2"  # tests/conftest.py VLLM_SERVED_NAME
MODEL = engines.server_model_key(SERVED)
REPO = Path(__file__).resolve().parents[1]
FEW = GenerationSettings(max_new_tokens=6, min_new_tokens=6)
ENDLESS = GenerationSettings(max_new_tokens=2000, min_new_tokens=2000)
PARITY_LIMIT = 0.01



@pytest.fixture(scope="session")
def runtime(vllm_server) -> Runtime:
    return Runtime("cpu", "fp32", engine_url=vllm_server.url)


def _metric(server: VllmServer, name: str) -> float:
    with urllib.request.urlopen(f"http://{server.host}:{server.port}/metrics", timeout=5) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith(name) and not line.startswith("#"):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


# ------------------------------------------------------------------ against the real server


@pytest.mark.slow  # starts vLLM (about a minute) once for the session
def test_the_picker_lists_the_servers_models_beside_the_local_ones(runtime):
    choices = dict((key, label) for label, key in engines.model_choices(runtime))
    assert "smolvlm2-256m" in choices and MODEL in choices
    assert "server" in choices[MODEL]
    spec = runtime.spec(MODEL)
    assert spec.family == "smolvlm" and spec.context_length == 8192


@pytest.mark.slow  # starts vLLM (about a minute) once for the session
def test_chat_streams_through_chat_completions(runtime):
    request = ChatRequest(model=MODEL, turns=(Turn("user", "Say something."),), settings=FEW)
    stream = start_chat(request, runtime)
    chunks = list(stream)
    assert stream.prepared.engine.kind == "server" and stream.prepared.loaded is None
    assert "".join(c.text for c in chunks)
    last = chunks[-1]
    assert last.finish_reason == "length" and last.generated_tokens == 6
    assert last.prompt_tokens > 0 and last.time_to_first_token is not None


@pytest.mark.slow  # starts vLLM (about a minute) once for the session
def test_a_video_question_sends_the_sampled_frames_and_shows_them(runtime, tiny_vllm_model, media_dir):
    video = media_factory.make_video(media_dir / "engine-video.mp4", seconds=5, fps=10, size=(128, 96))
    request = ChatRequest(model=MODEL, turns=(Turn("user", "What happens?", (Attachment(VIDEO, str(video)),)),),
                          settings=FEW)
    stream = start_chat(request, runtime)
    frames = stream.prepared.frames_seen
    times = [t for _, t in frames]
    assert len(frames) == 5 and times == sorted(times) and times[-1] < 5  # SmolVLM2: 1 fps, 5 s
    content = stream.prepared.inputs["messages"][-1]["content"]
    assert sum(part["type"] == "image_url" for part in content) == len(frames)
    assert "series of five frames from a 0:00:05 [H:MM:SS] video" in content[0]["text"]
    chunks = list(stream)
    # The server saw exactly the local prompt: same text, same image tokens.
    local = start_chat(ChatRequest(model=str(tiny_vllm_model), turns=request.turns, settings=FEW),
                       Runtime("cpu", "fp32"))
    local_chunks = list(local)
    assert chunks[-1].prompt_tokens == local.prepared.prompt_tokens == local_chunks[-1].prompt_tokens


@pytest.mark.slow  # starts vLLM (about a minute) once for the session
def test_stop_closes_the_stream_and_the_server_aborts_the_request(runtime, vllm_server):
    cancel = threading.Event()
    stream = start_chat(ChatRequest(model=MODEL, turns=(Turn("user", "Go on and on."),), settings=ENDLESS),
                        runtime, cancel)
    chunks = []
    started = time.perf_counter()
    for chunk in stream:
        chunks.append(chunk)
        if len(chunks) == 3:
            cancel.set()
    assert chunks[-1].finish_reason == "cancelled" and chunks[-1].generated_tokens < 2000
    assert time.perf_counter() - started < 30
    deadline = time.time() + 10
    while _metric(vllm_server, "vllm:num_requests_running") and time.time() < deadline:
        time.sleep(0.2)
    assert _metric(vllm_server, "vllm:num_requests_running") == 0  # aborted, not left generating
    assert not [t for t in threading.enumerate() if t.name == "vlms-engine-stream" and t.is_alive()]
    again = list(start_chat(ChatRequest(model=MODEL, turns=(Turn("user", "Hi"),), settings=FEW), runtime))
    assert again[-1].finish_reason == "length"
    # Leaving early (a closed browser tab) closes the stream too, at once.
    leaving = start_chat(ChatRequest(model=MODEL, turns=(Turn("user", "Go on."),), settings=ENDLESS), runtime)
    next(iter(leaving))
    started = time.perf_counter()
    leaving.close()
    assert time.perf_counter() - started < 5
    assert not [t for t in threading.enumerate() if t.name == "vlms-engine-stream" and t.is_alive()]


@pytest.mark.slow  # starts vLLM (about a minute) once for the session
def test_compare_one_local_model_and_one_on_the_server(runtime, tiny_smolvlm, sample_image):
    pair = side_by_side_requests(str(tiny_smolvlm), MODEL, "Describe.", [str(sample_image)], settings=FEW)
    updates = list(stream_side_by_side(*pair, runtime))
    panes = updates[-1].panes
    assert [p.status for p in panes] == ["done", "done"]
    assert all(p.answer for p in panes)
    assert "model server" in panes[1].info.description and panes[1].info.weights_bytes == 0
    assert panes[0].info.weights_bytes > 0


def _window_clips(media_dir: Path, name: str, seconds: float) -> list:
    """3 s windows of 2 frames of a generated video, as a scan cuts them."""
    video = media_factory.make_video(media_dir / name, seconds=seconds, fps=10, size=(128, 96))
    info = probe(str(video), LIMITS)
    return [clip for _, clip in iter_window_clips(video, info, make_windows(info.duration, 3.0), 2)]


@pytest.mark.slow  # starts vLLM (about a minute) once for the session
def test_highlight_scores_on_the_server_equal_the_local_scorer(runtime, tiny_vllm_model, media_dir):
    clips = _window_clips(media_dir, "engine-scan.mp4", 12)
    question = scoring_question("a bright flash")
    local = engines.LOCAL.scorer(str(tiny_vllm_model), question, ("yes", "no"), SCORING_SYSTEM_PROMPT, runtime)
    served = runtime.engine_for(MODEL).scorer(MODEL, question, ("yes", "no"), SCORING_SYSTEM_PROMPT, runtime)
    assert served.answers == local.answers  # the same first-token ids, read through the server's tokenizer
    ours, theirs = local.score_batch(clips), served.score_batch(clips)
    worst = max(abs(a - b) for a, b in zip(ours, theirs))
    print(f"\nP(yes) local vs vLLM over {len(clips)} windows: max |difference| = {worst:.2e}")
    assert worst <= PARITY_LIMIT


@pytest.mark.slow  # starts vLLM (about a minute) once for the session
def test_heard_windows_score_the_same_on_the_model_server(runtime, tiny_vllm_model, media_dir):
    """The server engine puts the heard line (issue 17) where the local scorer does: equal
    P(yes), and its token count (the server's tokenizer) agrees with the local one."""
    clips = _window_clips(media_dir, "engine-heard.mp4", 6)
    question = scoring_question("the speaker explains the method")
    local = engines.LOCAL.scorer(str(tiny_vllm_model), question, ("yes", "no"), SCORING_SYSTEM_PROMPT, runtime)
    served = runtime.engine_for(MODEL).scorer(MODEL, question, ("yes", "no"), SCORING_SYSTEM_PROMPT, runtime)
    lines = ['Said in this part: "here is the method <image>"', NOTHING_SAID]
    plain = 'Said in this part: "here is the method"'
    assert served.count_tokens(plain) == local.count_tokens(plain)  # one tokenizer, read two ways
    # Neutralised control tokens count as the text each engine sends (the server's is wider).
    assert served.count_tokens(lines[0]) >= local.count_tokens(lines[0]) > local.count_tokens(plain)
    ours, theirs = local.score_batch(clips, texts=lines), served.score_batch(clips, texts=lines)
    assert max(abs(a - b) for a, b in zip(ours, theirs)) <= 0.01
    assert ours != local.score_batch(clips)  # the line reached the model


@pytest.mark.slow  # starts vLLM (about a minute) once for the session
def test_the_batch_cli_clips_a_folder_on_the_engine_and_resumes(vllm_server, tiny_vllm_model, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    for k in range(3):
        media_factory.make_video(folder / f"clip{k}.mp4", seconds=6 + 2 * k, fps=10, size=(128, 96))
    common = [str(folder), "--criteria", "a bright flash", "--target-seconds", "4", "--window-seconds", "2",
              "--audio-weight", "0", "--quiet", "--cache-dir", str(tmp_path / "cache")]
    served = _cli([*common, "--engine-url", vllm_server.url, "--jobs", "2", "--out", str(tmp_path / "served")])
    assert served.returncode == 0, served.stderr
    assert "total: 3 videos, 3 done, 0 skipped, 0 failed" in served.stdout
    for k in range(3):
        assert (tmp_path / "served" / f"clip{k}" / "highlights.mp4").stat().st_size > 0
    again = _cli([*common, "--engine-url", vllm_server.url, "--jobs", "2", "--out", str(tmp_path / "served")])
    assert "total: 3 videos, 0 done, 3 skipped, 0 failed" in again.stdout, again.stdout + again.stderr
    local = _cli([*common, "--model", str(tiny_vllm_model), "--device", "cpu", "--dtype", "fp32",
                  "--out", str(tmp_path / "local")])
    assert local.returncode == 0, local.stderr
    for k in range(3):
        ours, theirs = (_scores(tmp_path / where / f"clip{k}" / "highlights.json") for where in ("local", "served"))
        assert len(ours) == len(theirs) and max(abs(a - b) for a, b in zip(ours, theirs)) <= PARITY_LIMIT


def _cli(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.highlights", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=600, env={**_environment(), "HF_HUB_OFFLINE": "1"})


def _environment() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if k != "VLMS_ENGINE_URL"}


def _scores(path: Path) -> list[float]:
    return [window["score"] for window in json.loads(path.read_text())["windows"]]


@pytest.mark.slow  # starts vLLM (about a minute) once for the session
def test_the_app_answers_a_video_question_on_the_engine_with_the_frames_gallery(vllm_server, tiny_smolvlm, video_20s):
    from gradio_client import Client, handle_file

    from tests.app_server import serve

    with serve(tiny_smolvlm, engine_url=vllm_server.url) as (url, _demo):
        client = Client(url, verbose=False)
        try:
            history, _textbox, stats, frames = client.predict(
                {"text": "What happens in this video?", "files": [handle_file(str(video_20s))]}, [],
                model=MODEL, max_new_tokens=8, api_name="/chat")
        finally:
            client.close()
    answer = history[-1]["content"]
    assert history[-1]["role"] == "assistant" and (answer if isinstance(answer, str) else answer[0]["text"]).strip()
    assert len(frames) == 20 and frames[0]["caption"] == "0:00.00"  # 1 fps, as the local model samples
    assert "model server" in stats


# ------------------------------------------------------------------ failures, worded for users


def test_an_unreachable_server_says_so():
    engine = ServerEngine(f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(EngineUnreachableError, match="cannot be reached"):
        engine.served()


@pytest.mark.slow  # starts vLLM (about a minute) once for the session
def test_a_model_the_server_does_not_serve(runtime):
    with pytest.raises(ModelNotServedError, match="does not serve 'nope'"):
        runtime.spec(engines.server_model_key("nope"))


@pytest.mark.slow  # starts vLLM (about a minute) once for the session
def test_the_servers_refusal_is_passed_on(runtime):
    # Longer than the served context: the server, which counts the tokens, refuses and says why.
    long_text = "tell me more " * 4000
    stream = start_chat(ChatRequest(model=MODEL, turns=(Turn("user", long_text),), settings=FEW), runtime)
    with pytest.raises(EngineRefusedError, match="refused the request: .*(context|too long|length)"):
        list(stream)


def test_a_server_that_never_answers_times_out():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # accepts connections, never answers
    try:
        engine = ServerEngine(f"http://127.0.0.1:{listener.getsockname()[1]}/v1", timeout_s=0.5)
        with pytest.raises(EngineTimeoutError, match="did not answer within"):
            engine.served(fresh=True)
    finally:
        listener.close()


def test_perception_lm_is_local_only(tiny_plm):
    with pytest.raises(LocalOnlyModelError, match="PerceptionLM.*local models"):
        check_servable(ServedModel("plm", str(tiny_plm), 11520))
    assert engines.server.family_of(ServedModel("plm", "facebook/Perception-LM-1B", None)) == PERCEPTION_LM


def test_the_api_key_never_shows(caplog):
    secret = "sk-very-secret"
    caplog.set_level(logging.DEBUG)
    runtime = Runtime(engine_url=f"http://127.0.0.1:{free_port()}/v1", engine_api_key=secret)
    assert engines.model_choices(runtime)  # the local models, with a warning about the server
    engine = engines.server_engine(runtime)
    with pytest.raises(EngineUnreachableError) as failure:
        engine.served(fresh=True)
    shown = " ".join([repr(runtime), repr(engine), repr(engine.client), str(failure.value), caplog.text])
    assert secret not in shown


def test_app_flags_and_environment_configure_the_engine():
    import app

    config = app.parse_args(["--engine-url", "http://gpu-box:8000/v1", "--engine-in-flight", "16"],
                            environ={"VLMS_ENGINE_API_KEY": "sk-SECRET-123"})
    runtime = config.runtime
    assert (runtime.engine_url, runtime.engine_api_key, runtime.engine_in_flight) == \
        ("http://gpu-box:8000/v1", "sk-SECRET-123", 16)
    assert config.concurrency == 16  # the server batches: as many chats at once as requests in flight
    assert "SECRET" not in repr(config) and "SECRET" not in repr(runtime)
    from_env = app.parse_args([], environ={"VLMS_ENGINE_URL": "http://127.0.0.1:8000/v1"})
    assert from_env.engine_url == "http://127.0.0.1:8000/v1" and from_env.engine_api_key is None
    assert app.parse_args([], environ={}).runtime.engine_url is None
