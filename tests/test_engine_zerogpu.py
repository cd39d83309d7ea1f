"""On an (emulated) ZeroGPU Space the Highlights scan reaches the GPU: its scoring runs under
``spaces.GPU`` (the stand-in pickles arguments and results like the real one), and the scores
equal the in-process scan's. Before issue 13, ``Scorer._forward`` called the model directly."""

from __future__ import annotations

import pytest

from pipelines import engines
from pipelines.highlights.cache import ScoreCache
from pipelines.highlights.pipeline import HighlightRequest, analyse
from pipelines.runtime import Runtime
from tests.test_zerogpu import fake_spaces  # noqa: F401 - the fixture

RUNTIME = Runtime("cpu", "fp32")


def _request(video, model) -> HighlightRequest:
    return HighlightRequest(video=str(video), model=str(model), criteria="a bright moment", window_seconds=2.0,
                            frames_per_window=2, target_seconds=2.0, batch_size=2)


@pytest.fixture(scope="module")
def local_scores(tiny_smolvlm, short_video):
    analysis = analyse(_request(short_video, tiny_smolvlm), RUNTIME, cache=ScoreCache(enabled=False))
    return list(analysis.visual)


def test_the_scan_scores_under_spaces_gpu_with_the_same_scores(tiny_smolvlm, short_video, local_scores, fake_spaces):  # noqa: F811
    assert engines.local_engine() is engines.ZEROGPU
    analysis = analyse(_request(short_video, tiny_smolvlm), RUNTIME, cache=ScoreCache(enabled=False))
    batches = -(-len(local_scores) // 2)
    assert len(fake_spaces.durations) == batches  # one GPU task per batch, each with an estimate
    assert all(10 <= d <= 120 for d in fake_spaces.durations)
    assert list(analysis.visual) == pytest.approx(local_scores, abs=1e-5)


def test_without_spaces_the_scan_stays_in_process(tiny_smolvlm):
    assert engines.local_engine() is engines.LOCAL
    scorer = engines.LOCAL.scorer(str(tiny_smolvlm), "Is it bright?", ("yes", "no"), "", RUNTIME)
    assert scorer.forward_logits is engines.LocalEngine._logits  # not ZeroGPUEngine's


def test_on_zerogpu_frames_are_encoded_once_and_other_criteria_score_on_them(tiny_smolvlm, short_video, local_scores,
                                                                             fake_spaces, tmp_path, monkeypatch):  # noqa: F811
    from dataclasses import replace

    from tests.test_frame_features import counting

    cache = ScoreCache(tmp_path)
    first = analyse(_request(short_video, tiny_smolvlm), RUNTIME, cache=cache)
    assert list(first.visual) == pytest.approx(local_scores, abs=1e-4)  # encoded in the GPU task, and kept
    batches = -(-len(local_scores) // 2)
    assert len(fake_spaces.durations) == batches
    other = replace(_request(short_video, tiny_smolvlm), criteria="a dark moment")
    with counting(monkeypatch, tiny_smolvlm) as counts:
        analysis = analyse(other, RUNTIME, cache=cache)
    assert counts == {"decodes": 0, "vision": 0, "frames": 0}
    assert len(fake_spaces.durations) == 2 * batches  # still one GPU task per batch
    expected = analyse(other, RUNTIME, cache=ScoreCache(enabled=False)).visual
    assert list(analysis.visual) == pytest.approx(list(expected), abs=1e-4)


def test_on_zerogpu_a_chat_on_kept_features_encodes_in_a_gpu_task_once(tiny_smolvlm, video_20s, fake_spaces,
                                                                       tmp_path):  # noqa: F811
    """The criteria step's chat: its new frames are encoded in one GPU task and kept; the next
    chat on them runs only the generation task; the answers equal the in-process pixel answer."""
    from pipelines import features
    from tests.test_frame_features import _described

    store = features.FeatureStore(tmp_path).for_video("video")
    on_pixels = _described(tiny_smolvlm, video_20s, None)  # in the GPU task too: as in-process (test above)
    assert len(fake_spaces.durations) == 1
    first = _described(tiny_smolvlm, video_20s, store)
    assert len(fake_spaces.durations) == 3  # encode the new frames, then generate
    second = _described(tiny_smolvlm, video_20s, store)
    assert len(fake_spaces.durations) == 4  # generate only: every frame was kept
    assert first == on_pixels and second == on_pixels
    assert len(list(tmp_path.glob("*.safetensors"))) == 6
