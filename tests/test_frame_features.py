"""Each frame is encoded once (issue 16): a scan keeps what the vision encoder made of every frame
next to the score cache, and a scan of the same video with other criteria scores on those
features: the same scores (within 1e-4, both tiny checkpoints), no decoding, no vision encoder."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path

import pytest
import torch

from pipelines import features as features_module
from pipelines import media
from pipelines.highlights import signals as signals_module
from pipelines.highlights import windows as windows_module
from pipelines.highlights.cache import ScoreCache
from pipelines.highlights.pipeline import HighlightRequest, analyse
from pipelines.loading import cached_models
from pipelines.runtime import Runtime

RUNTIME = Runtime("cpu", "fp32")


def _request(video, model, criteria="a bright moment") -> HighlightRequest:
    return HighlightRequest(video=str(video), model=str(model), criteria=criteria, window_seconds=2.0,
                            frames_per_window=2, target_seconds=2.0, batch_size=2)


def vision_encoder(model: torch.nn.Module) -> torch.nn.Module:
    """The vision tower of either family (SmolVLM: vision_model; PerceptionLM: vision_tower)."""
    inner = model.model
    return getattr(inner, "vision_model", None) or inner.vision_tower


@contextlib.contextmanager
def counting(monkeypatch, model_dir):
    """Counts real work while a scan runs: decoding children started (each reads a chunk of the
    video) and vision-encoder forward passes (a forward hook on the tower of every loaded copy
    of ``model_dir``: the app's runtime may hold its own)."""
    counts = {"decodes": 0, "vision": 0, "frames": 0}
    real_run = windows_module.isolation.run

    def run(function, *args, **kwargs):
        # not the probe's child; the signals pass decodes the scan's frames when it runs (one pass)
        if getattr(function, "func", function) in (media.read_frames, signals_module.read_signals_and_frames):
            counts["decodes"] += 1
        return real_run(function, *args, **kwargs)

    monkeypatch.setattr(windows_module.isolation, "run", run)
    RUNTIME.load(str(model_dir))
    towers = [vision_encoder(m.model) for m in cached_models() if Path(m.spec.source) == Path(model_dir)]
    def seen(_module, _args, output) -> None:
        counts["vision"] += 1
        counts["frames"] += int(output.last_hidden_state.shape[0])  # frames (or tiles) encoded

    hooks = [tower.register_forward_hook(seen) for tower in towers]
    try:
        yield counts
    finally:
        for hook in hooks:
            hook.remove()
        monkeypatch.setattr(windows_module.isolation, "run", real_run)


def _uncached(request) -> list[float]:
    return list(analyse(request, RUNTIME, cache=ScoreCache(enabled=False)).visual)


def test_scores_on_kept_features_equal_the_pixel_pass(tiny_model, short_video, tmp_path):
    cache = ScoreCache(tmp_path)
    first = _request(short_video, tiny_model)
    assert list(analyse(first, RUNTIME, cache=cache).visual) == pytest.approx(_uncached(first), abs=1e-4)
    assert list((tmp_path / "features").glob("*.safetensors"))  # the first scan kept its frames
    other = _request(short_video, tiny_model, "people cheering at a goal")
    assert list(analyse(other, RUNTIME, cache=cache).visual) == pytest.approx(_uncached(other), abs=1e-4)


def test_other_criteria_neither_decode_the_video_nor_run_the_vision_encoder(tiny_model, short_video, tmp_path,
                                                                          monkeypatch):
    cache = ScoreCache(tmp_path)
    with counting(monkeypatch, tiny_model) as first:
        analyse(_request(short_video, tiny_model), RUNTIME, cache=cache)
    assert first["decodes"] >= 1 and first["vision"] >= 1  # the counters see real work
    with counting(monkeypatch, tiny_model) as second:
        analysis = analyse(_request(short_video, tiny_model, "a dark moment"), RUNTIME, cache=cache)
    assert not analysis.from_cache  # the scores are new: the language model ran
    assert second == {"decodes": 0, "vision": 0, "frames": 0}


def test_a_partly_kept_video_encodes_only_the_missing_frames(tiny_smolvlm, short_video, tmp_path, monkeypatch):
    cache = ScoreCache(tmp_path)
    analyse(_request(short_video, tiny_smolvlm), RUNTIME, cache=cache)
    kept = sorted((tmp_path / "features").glob("*.safetensors"))
    for path in kept[::2]:
        path.unlink()
    kept[1].write_bytes(b"not a safetensors file")  # damaged: a miss, never an error
    other = _request(short_video, tiny_smolvlm, "a dark moment")
    with counting(monkeypatch, tiny_smolvlm) as counts:
        scores = list(analyse(other, RUNTIME, cache=cache).visual)
    assert counts["decodes"] >= 1 and counts["vision"] >= 1
    assert scores == pytest.approx(_uncached(other), abs=1e-4)
    assert len(list((tmp_path / "features").glob("*.safetensors"))) == len(kept)  # all kept again


def test_without_the_feature_cache_every_scan_encodes_pixels(tiny_smolvlm, short_video, tmp_path, monkeypatch):
    cache = ScoreCache(tmp_path, features=False)
    analyse(_request(short_video, tiny_smolvlm), RUNTIME, cache=cache)
    with counting(monkeypatch, tiny_smolvlm) as counts:
        analyse(_request(short_video, tiny_smolvlm, "a dark moment"), RUNTIME, cache=cache)
    assert counts["decodes"] >= 1 and counts["vision"] >= 1
    assert not (tmp_path / "features").exists()


def test_the_store_stays_within_its_bound_dropping_the_least_recently_used(tiny_smolvlm, tmp_path):
    loaded = RUNTIME.load(str(tiny_smolvlm))
    one = torch.randn(4, 8)
    size = _stored_size(tmp_path / "probe", loaded, one)
    store = features_module.FeatureStore(tmp_path / "features", max_bytes=3 * size)
    frames = store.for_video("video-hash").for_model(loaded)
    for index in range(3):
        frames.put_many({index: one + index})
        os.utime(frames.path(index), ns=(index * 10**9, index * 10**9))  # distinct ages
    assert frames.get(0) is not None  # read: now the most recently used
    frames.put_many({3: one})
    assert [frames.path(i).is_file() for i in range(4)] == [True, False, True, True]
    torch.testing.assert_close(frames.get(2), one + 2)


def _stored_size(folder, loaded, tensor) -> int:
    frames = features_module.FeatureStore(folder).for_video("x").for_model(loaded)
    frames.put_many({0: tensor})
    return frames.path(0).stat().st_size


def test_the_key_holds_video_model_dtype_and_frame_size(tiny_smolvlm, tmp_path):
    loaded = RUNTIME.load(str(tiny_smolvlm))
    store = features_module.FeatureStore(tmp_path)
    base = store.for_video("a").for_model(loaded).path(7)
    assert store.for_video("b").for_model(loaded).path(7) != base
    assert store.for_video("a").for_model(loaded).path(8) != base
    resized = dataclasses.replace(loaded, processor=_with_size(loaded.processor, 32))
    assert store.for_video("a").for_model(resized).path(7) != base
    assert store.for_video("a").for_model(dataclasses.replace(loaded, dtype=torch.bfloat16)).path(7) != base


def _with_size(processor, edge: int):
    import copy

    changed = copy.deepcopy(processor)
    changed.video_processor.size = {"longest_edge": edge}
    return changed


def test_a_still_shot_is_encoded_once_with_the_same_scores(tiny_model, tmp_path, monkeypatch):
    from tests.media_factory import make_still_video

    still = make_still_video(tmp_path / "still.mp4", seconds=6)
    request = _request(still, tiny_model)
    with counting(monkeypatch, tiny_model) as counts:
        scores = list(analyse(request, RUNTIME, cache=ScoreCache(tmp_path / "cache")).visual)
    assert counts["frames"] == _distinct_runs(still) < 6  # 6 frames over 3 windows, in 2 batches
    assert scores == pytest.approx(_uncached(request), abs=1e-4)


def _distinct_runs(video) -> int:
    """How many times the sampled frames change, in order (x264 makes the keyframe and the
    frames after it differ slightly, though the picture never changes)."""
    import numpy as np

    from pipelines.highlights.windows import frame_indices, make_windows

    info = media.probe_video(video)
    indices = [i for w in make_windows(info.duration, 2.0) for i in frame_indices(w, info.fps, info.frame_count, 2)]
    frames = media.read_frames(video, indices, info, backend="pyav")
    return 1 + sum(not np.array_equal(frames[k - 1], frames[k]) for k in range(1, len(frames)))


def test_features_gone_since_the_check_are_decoded_and_kept_again(tiny_smolvlm, short_video, tmp_path, monkeypatch):
    cache = ScoreCache(tmp_path)
    analyse(_request(short_video, tiny_smolvlm), RUNTIME, cache=cache)
    damaged = sorted((tmp_path / "features").glob("*.safetensors"))[0]
    damaged.write_bytes(b"damaged")  # still there for the check, unreadable when scored
    other = _request(short_video, tiny_smolvlm, "a dark moment")
    with counting(monkeypatch, tiny_smolvlm) as counts:
        scores = list(analyse(other, RUNTIME, cache=cache).visual)
    assert counts["decodes"] >= 1 and counts["frames"] >= 1
    assert scores == pytest.approx(_uncached(other), abs=1e-4)
    assert damaged.stat().st_size > len(b"damaged")  # encoded again and kept
