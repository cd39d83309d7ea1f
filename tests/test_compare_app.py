"""The Compare tab of the real app, served on 127.0.0.1 and driven with gradio_client:
/compare (several images, one model) and /compare_models (two tiny checkpoints side by side)."""

from __future__ import annotations

import threading
import time

import pytest
from gradio_client import handle_file

from pipelines import loading, memory
from tests.app_server import serve


@pytest.fixture(scope="module")
def app_url(tiny_smolvlm):
    with serve(tiny_smolvlm) as (url, _demo):
        yield url


def _files(*paths):
    return [handle_file(str(path)) for path in paths]


def _generate_threads():
    return [t for t in threading.enumerate() if t.name == "vlms-generate"]


def test_endpoints_take_the_natural_inputs_first_and_default_the_rest(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    ask, versus = endpoints["/compare"], endpoints["/compare_models"]
    assert [p["parameter_name"] for p in ask["parameters"]][:3] == ["files", "question", "model"]
    assert [p["parameter_name"] for p in versus["parameters"]][:6] == [
        "model_a", "model_b", "question", "files", "video", "sequential"]
    for endpoint, natural in ((ask, 2), (versus, 3)):
        assert all(p["parameter_has_default"] for p in endpoint["parameters"][natural:])
    assert [r["label"] for r in versus["returns"]] == ["Answer A", "Stats A", "Answer B", "Stats B"]


def test_compare_three_images_streams_an_answer(client, sample_image, second_image):
    job = client.submit(_files(sample_image, second_image, sample_image), "What differs?",
                        max_new_tokens=16, api_name="/compare")
    updates = list(job)
    answer, stats = job.result()
    assert len(updates) >= 2 and isinstance(answer, str) and answer
    assert "Image 1 = scene.png · Image 2 = other.jpg · Image 3 = scene.png" in stats
    assert "16 new tokens" in stats


def test_compare_models_returns_two_answers_and_their_stats(client, tiny_smolvlm, tiny_plm, sample_image,
                                                            second_image):
    answer_a, stats_a, answer_b, stats_b = client.predict(
        str(tiny_smolvlm), str(tiny_plm), "Describe them.", _files(sample_image, second_image),
        max_new_tokens=12, api_name="/compare_models")
    assert answer_a and answer_b
    for stats, name in ((stats_a, tiny_smolvlm.name), (stats_b, tiny_plm.name)):
        assert name in stats and "first token" in stats and "tok/s" in stats and "12 new tokens" in stats
        assert "visual of" in stats and "peak memory" in stats and "both models running" in stats


def test_compare_models_on_a_video_one_after_the_other(client, tiny_smolvlm, tiny_plm, short_video):
    answer_a, stats_a, answer_b, stats_b = client.predict(
        str(tiny_smolvlm), str(tiny_plm), "What happens?", [], handle_file(str(short_video)), True,
        max_new_tokens=4, api_name="/compare_models")
    assert answer_a and answer_b
    assert "6 video frames" in stats_a and "32 video frames" in stats_b  # each family samples its own way
    assert "both models running" not in stats_a + stats_b


def test_one_image_gives_a_clear_error_and_the_next_request_is_served(client, sample_image, second_image):
    with pytest.raises(Exception) as info:
        client.predict(_files(sample_image), "What differs?", api_name="/compare")
    message = str(info.value)
    assert "at least 2 images" in message and "Traceback" not in message
    answer, _stats = client.predict(_files(sample_image, second_image), "What differs?", max_new_tokens=8,
                                    api_name="/compare")
    assert answer


def test_stop_ends_both_generation_threads(client, endless_pair, sample_image):
    job = client.submit(*map(str, endless_pair), "Tell a long story.", _files(sample_image),
                        max_new_tokens=2000, api_name="/compare_models")
    deadline = time.time() + 60
    while len(_generate_threads()) < 2 and time.time() < deadline:
        time.sleep(0.05)
    assert len(_generate_threads()) == 2, "the two generations never ran at the same time"
    client.predict(api_name="/compare_stop")
    started = time.time()
    while _generate_threads() and time.time() - started < 2.0:
        time.sleep(0.05)
    assert not _generate_threads(), "a generation thread outlived Stop by 2 s"
    _answer_a, stats_a, _answer_b, stats_b = job.result()
    assert "stopped" in stats_a and "stopped" in stats_b


def test_job_cancel_ends_both_generation_threads(client, endless_pair, sample_image):
    job = client.submit(*map(str, endless_pair), "Tell a long story.", _files(sample_image),
                        max_new_tokens=2000, api_name="/compare_models")
    deadline = time.time() + 60
    while len(_generate_threads()) < 2 and time.time() < deadline:
        time.sleep(0.05)
    assert len(_generate_threads()) == 2
    job.cancel()  # Gradio closes the generator: both panes must stop, not only the stream
    started = time.time()
    while _generate_threads() and time.time() - started < 2.0:
        time.sleep(0.05)
    assert not _generate_threads(), "a generation thread outlived job.cancel() by 2 s"


def test_a_pair_that_does_not_fit_is_refused_then_runs_one_after_the_other(client, tiny_smolvlm, tiny_plm,
                                                                           sample_image, monkeypatch):
    loading.clear_cache()
    monkeypatch.setattr(memory, "available_bytes", lambda device: 1_000)  # the server runs in this process
    with pytest.raises(Exception, match="Run one after the other"):
        client.predict(str(tiny_smolvlm), str(tiny_plm), "Describe.", _files(sample_image), api_name="/compare_models")
    answer_a, _, answer_b, _ = client.predict(str(tiny_smolvlm), str(tiny_plm), "Describe.", _files(sample_image),
                                              None, True, max_new_tokens=4, api_name="/compare_models")
    assert answer_a and answer_b
