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


def as_a_new_process() -> None:
    """Forget the rows' prefixes kept in memory (pipelines.prefix_cache): what a new process
    finds is the feature store on disk only."""
    from pipelines.prefix_cache import PREFIXES

    PREFIXES.clear()


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
    as_a_new_process()
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
    as_a_new_process()
    other = _request(short_video, tiny_smolvlm, "a dark moment")
    with counting(monkeypatch, tiny_smolvlm) as counts:
        scores = list(analyse(other, RUNTIME, cache=cache).visual)
    assert counts["decodes"] >= 1 and counts["frames"] >= 1
    assert scores == pytest.approx(_uncached(other), abs=1e-4)
    assert damaged.stat().st_size > len(b"damaged")  # encoded again and kept


# ---------------------------------------------------------------------------------------------
# Generation on kept features: the criteria step shares its frames with the scan
# ---------------------------------------------------------------------------------------------

CHOSEN = (3, 40, 77, 150, 200, 290)  # frame numbers of the 20 s, 15 fps test video


def _described(model_dir, video, features) -> tuple[str, int, list]:
    """A greedy video chat about the CHOSEN frames: (answer, tokens, timestamps seen)."""
    from pipelines.chat import ChatRequest, start_chat
    from pipelines.generation import GenerationSettings
    from pipelines.messages import VIDEO, Attachment, Turn

    request = ChatRequest(model=str(model_dir), turns=(Turn("user", "Describe it.", (Attachment(VIDEO, str(video)),)),),
                          settings=GenerationSettings(max_new_tokens=12), max_frames=len(CHOSEN), video_frames=CHOSEN,
                          frame_features=features)
    stream = start_chat(request, RUNTIME)
    try:
        for _chunk in stream:
            pass
    finally:
        stream.close()
    return stream.text, stream.last.generated_tokens, [seconds for _, seconds in stream.prepared.frames_seen]


def test_a_chat_on_kept_features_answers_as_on_pixels_and_keeps_them(tiny_model, video_20s, tmp_path, monkeypatch):
    store = features_module.FeatureStore(tmp_path).for_video("video")
    on_pixels = _described(tiny_model, video_20s, None)
    assert on_pixels[2] == pytest.approx([i / 15 for i in CHOSEN])  # the chosen frames, with their times
    with counting(monkeypatch, tiny_model) as first:
        encoded = _described(tiny_model, video_20s, store)
    with counting(monkeypatch, tiny_model) as second:
        kept = _described(tiny_model, video_20s, store)
    assert on_pixels[1] > 0 and encoded == on_pixels and kept == on_pixels
    assert first["frames"] == len(CHOSEN) and second["vision"] == 0  # encoded once, then read back
    assert len(list(tmp_path.glob("*.safetensors"))) == len(CHOSEN)


def test_suggested_criteria_show_frames_the_scan_then_does_not_encode_again(tiny_model, video_20s, tmp_path,
                                                                           monkeypatch):
    from pipelines.highlights.pipeline import criteria_frames
    from pipelines.highlights.windows import make_windows, window_frames

    request = dataclasses.replace(_request(video_20s, tiny_model, ""), auto_criteria=True)
    info = media.probe_video(video_20s)
    grid = window_frames(make_windows(info.duration, 2.0), info, 2)
    assert len(grid) > len(criteria_frames(grid)) == 16  # the scan scores frames the criteria did not see
    with counting(monkeypatch, tiny_model) as counts:
        analysis = analyse(request, RUNTIME, cache=ScoreCache(tmp_path))
    assert analysis.criteria.strip()
    # Each frame of the grid went through the vision encoder once: the 16 shown for the criteria
    # were not encoded again by the scan (before, they were: 16 + len(grid) frames).
    assert counts["frames"] == len(grid) == _distinct_runs_of(video_20s, grid)
    typed = dataclasses.replace(request, criteria=analysis.criteria, auto_criteria=False)
    assert list(analysis.visual) == pytest.approx(_uncached(typed), abs=1e-4)


def _distinct_runs_of(video, indices) -> int:
    """Frames of ``indices`` that differ from the one before (encode_distinct encodes only those)."""
    import numpy as np

    frames = media.read_frames(video, indices, backend="pyav")
    return 1 + sum(not np.array_equal(frames[k - 1], frames[k]) for k in range(1, len(frames)))


def test_criteria_frames_are_spread_evenly_over_the_scan_grid():
    from pipelines.highlights.pipeline import criteria_frames

    grid = tuple(range(0, 1200, 10))  # 120 frames, as a 10-minute scan at 2 frames per 10 s
    chosen = criteria_frames(grid, 16)
    assert len(chosen) == 16 and set(chosen) <= set(grid) and list(chosen) == sorted(set(chosen))
    gaps = {b - a for a, b in zip(chosen, chosen[1:])}
    assert max(gaps) - min(gaps) <= 10  # one grid step apart at most
    assert chosen[0] < 80 and chosen[-1] > 1120  # the whole video, not its start
    assert criteria_frames(grid[:5], 16) == grid[:5]
    assert criteria_frames((), 16) is None  # whole-shot windows: the chat's sampler chooses


def test_the_suggest_button_then_find_encode_each_frame_once(tiny_smolvlm, video_20s, tmp_path, monkeypatch):
    """The tab's two steps: Suggest (with the scan's window settings), then Find with them."""
    from pipelines.highlights.pipeline import suggest_criteria
    from pipelines.highlights.windows import make_windows, window_frames

    cache = ScoreCache(tmp_path)
    info = media.probe_video(video_20s)
    grid = window_frames(make_windows(info.duration, 2.0), info, 2)
    with counting(monkeypatch, tiny_smolvlm) as suggested:
        criteria = suggest_criteria(str(video_20s), str(tiny_smolvlm), RUNTIME, cache=cache, window_seconds=2.0,
                                    frames_per_window=2)
    with counting(monkeypatch, tiny_smolvlm) as found:
        analyse(_request(video_20s, tiny_smolvlm, criteria), RUNTIME, cache=cache)
    assert suggested["frames"] == 16 and found["frames"] == len(grid) - 16
    # Window settings that cannot be used leave the choice to the chat's sampler: still an answer.
    assert suggest_criteria(str(video_20s), str(tiny_smolvlm), RUNTIME, cache=ScoreCache(tmp_path / "other"),
                            window_seconds=-1.0).strip()


# ---------------------------------------------------------------------------------------------
# Kept prefixes: a re-score runs the question's tokens only
# ---------------------------------------------------------------------------------------------


def _language_model(model: torch.nn.Module) -> torch.nn.Module:
    inner = model.model
    return getattr(inner, "text_model", None) or inner.language_model


def _scorer_pair(model_dir, store, prefixes):
    """Two scorers of other criteria on the same frames: one keeping prefixes, one never."""
    from pipelines.scoring import Scorer

    loaded = RUNTIME.load(str(model_dir))
    frames = store.for_model(loaded)
    keeping = lambda question: Scorer(loaded, question, frame_features=frames, prefix_cache=prefixes)  # noqa: E731
    plain = lambda question: Scorer(loaded, question, frame_features=frames)  # noqa: E731
    return loaded, keeping, plain


def test_rows_on_kept_prefixes_score_as_the_full_pass_with_only_their_suffix_run(tiny_model, video_20s, tmp_path):
    from pipelines.highlights.windows import frame_indices, iter_window_clips, make_windows
    from pipelines.prefix_cache import PrefixCache

    info = media.probe_video(video_20s)
    windows = make_windows(info.duration, 2.0)[:4]
    clips = [clip for _, clip in iter_window_clips(video_20s, info, windows, 2)]
    frames = [frame_indices(w, info.fps, info.frame_count, 2) for w in windows]  # in the video, as a scan gives
    said = ["", 'Said in this part: "hello"', "", 'Said in this part: "a much longer line of what is said"']
    prefixes = PrefixCache(max_bytes=1 << 30)
    loaded, keeping, plain = _scorer_pair(tiny_model, features_module.FeatureStore(tmp_path).for_video("v"), prefixes)
    keeping("Highlights: a goal. Answer yes or no.").score_batch(clips, frames=frames, texts=said)
    assert len(prefixes) == len(clips)
    question = "Highlights of this video: a save, a crowd cheering, a red card.\nAnswer yes or no."
    seen: list[int] = []
    hook = _language_model(loaded.model).register_forward_pre_hook(
        lambda _m, args, kwargs: seen.append(int((kwargs.get("inputs_embeds") if kwargs.get("inputs_embeds") is not None
                                                 else kwargs["input_ids"]).shape[1])), with_kwargs=True)
    try:
        again = keeping(question).score_batch(clips, frames=frames, texts=said)
    finally:
        hook.remove()
    full = plain(question).score_batch(clips, frames=frames, texts=said)
    assert again == pytest.approx(full, abs=1e-5)
    # ONE pass on the longest row's tokens after its last frame: what is said and the question.
    from pipelines.encoding import encode_batch
    from pipelines.prefix_cache import rows

    inputs = encode_batch(loaded, [keeping(question)._conversation(c, t) for c, t in zip(clips, said)], "low")
    length = inputs["input_ids"].shape[1]
    after_frames = max(length - end for _start, end in rows(loaded, inputs["input_ids"], inputs["attention_mask"]))
    assert seen == [after_frames] and after_frames < length - 2 * len(frames)


def test_the_prefix_cache_stays_within_its_bound_and_can_be_off(tiny_smolvlm, video_20s, tmp_path):
    from pipelines.highlights.windows import frame_indices, iter_window_clips, make_windows
    from pipelines.prefix_cache import PrefixCache

    info = media.probe_video(video_20s)
    windows = make_windows(info.duration, 2.0)[:3]
    clips = [clip for _, clip in iter_window_clips(video_20s, info, windows, 2)]
    frames = [frame_indices(w, info.fps, info.frame_count, 2) for w in windows]
    store = features_module.FeatureStore(tmp_path).for_video("v")
    probe = PrefixCache(max_bytes=1 << 30)
    _scorer_pair(tiny_smolvlm, store, probe)[1]("Is it bright?").score_batch(clips[:1], frames=frames[:1])
    one = probe._bytes
    bounded = PrefixCache(max_bytes=2 * one + one // 2)
    keeping = _scorer_pair(tiny_smolvlm, store, bounded)[1]
    for clip, numbers in zip(clips, frames):
        keeping("Is it bright?").score_batch([clip], frames=[numbers])
    assert len(bounded) == 2 and bounded._bytes <= bounded.max_bytes  # the oldest row went first
    assert bounded.lookup([next(iter(bounded._entries))]) is not None
    off = PrefixCache(max_bytes=0)
    assert _scorer_pair(tiny_smolvlm, store, off)[1]("Is it bright?").prefix_cache is None


def test_a_re_scan_with_other_criteria_runs_neither_vision_nor_the_frames_tokens(tiny_model, short_video, tmp_path,
                                                                                monkeypatch):
    cache = ScoreCache(tmp_path)
    analyse(_request(short_video, tiny_model), RUNTIME, cache=cache)
    reads = []
    real_get = features_module.FrameFeatures.get
    monkeypatch.setattr(features_module.FrameFeatures, "get", lambda self, i: reads.append(i) or real_get(self, i))
    other = _request(short_video, tiny_model, "a dark moment")
    with counting(monkeypatch, tiny_model) as counts:
        scores = list(analyse(other, RUNTIME, cache=cache).visual)
    assert counts == {"decodes": 0, "vision": 0, "frames": 0} and reads == []  # prefixes only
    assert scores == pytest.approx(_uncached(other), abs=1e-4)


def test_on_the_cpu_frames_are_encoded_one_call_each_with_the_same_features(tiny_model, monkeypatch):
    loaded = RUNTIME.load(str(tiny_model))
    from benchmarks.vision_batch import frame_edge

    edge = frame_edge(loaded)
    pixels = torch.randn(3, 3, edge, edge)
    masks = torch.ones(3, edge, edge, dtype=torch.bool)
    calls = []
    hook = vision_encoder(loaded.model).register_forward_hook(lambda *_: calls.append(1))
    try:
        chunked = features_module.encode_frames(loaded, pixels, masks)
        assert len(calls) == 3  # VISION_FRAMES_PER_CALL["cpu"] == 1, measured fastest
        together = features_module.encode_in_one_call(loaded, pixels, masks)
        assert len(calls) == 4
    finally:
        hook.remove()
    torch.testing.assert_close(chunked, together, atol=1e-5, rtol=1e-5)

