"""Batched yes/no scoring through the real model classes of BOTH families (tiny checkpoints)."""

from __future__ import annotations

import math
import threading
from dataclasses import replace

import pytest
import torch

from pipelines import media
from pipelines.devices import DEVICE_LOCK
from pipelines.errors import BadInputError, GenerationCancelled, InputTooLongError
from pipelines.highlights import make_windows, scoring_question
from pipelines.highlights.windows import frame_indices, window_clip
from pipelines.runtime import Runtime
from pipelines.scoring import AnswerTokens, Scorer, answer_token_ids, option_probability

RUNTIME = Runtime(device="cpu", dtype="fp32")
QUESTION = scoring_question("a gradient sliding sideways; anything moving")


def score(loaded, clips, question, batch_size: int = 4, cancel=None) -> list[float]:
    """P(yes) of each clip: consecutive clips with one frame count, at most ``batch_size`` per
    forward pass (a scan's windows all have one frame count; PerceptionLM's processor takes one
    ``num_frames`` per call)."""
    scorer = Scorer(loaded, question)
    batches: list[list] = []
    for clip in clips:
        if batches and len(batches[-1]) < batch_size and _frames(batches[-1][0]) == _frames(clip):
            batches[-1].append(clip)
        else:
            batches.append([clip])
    return [p for batch in batches for p in scorer.score_batch(batch, cancel)]


def _frames(clip) -> int:
    return len(clip.sample.indices)


@pytest.fixture(scope="module")
def clips(video_20s):
    info = media.probe_video(video_20s)
    clips = []
    for window in make_windows(info.duration, 4.0):
        indices = frame_indices(window, info.fps, info.frame_count, 3)
        clips.append(window_clip(window, info, indices, media.read_frames(video_20s, indices, info)))
    return clips


def test_answer_tokens_are_distinct_first_tokens(tiny_model):
    tokenizer = RUNTIME.load(str(tiny_model)).tokenizer
    answers = answer_token_ids(tokenizer)
    assert answers.positive and answers.negative
    assert not set(answers.positive) & set(answers.negative)
    decoded = {tokenizer.decode([i]).strip().lower() for i in answers.positive}
    assert all(text and "yes".startswith(text) for text in decoded)


def test_whitespace_only_first_tokens_are_ignored():
    class SpaceFirst:  # " Yes" -> [" ", "Yes"], as byte-level BPEs without a merged " Yes" do
        vocab = {" ": 1, "yes": 2, "Yes": 3, "YES": 4, "no": 5, "No": 6, "NO": 7}

        def encode(self, text, add_special_tokens=False):
            return [1, self.vocab[text[1:]]] if text.startswith(" ") else [self.vocab[text]]

        def decode(self, ids):
            return {v: k for k, v in self.vocab.items()}[ids[0]]

    assert answer_token_ids(SpaceFirst()) == AnswerTokens((2, 3, 4), (5, 6, 7))


def test_probability_is_the_softmax_mass_of_yes_against_no():
    logits = torch.tensor([[0.0, 2.0, 1.0, 0.5, -1.0]])
    probability = option_probability(logits, AnswerTokens((1, 2), (3,)))
    expected = (math.exp(2) + math.exp(1)) / (math.exp(2) + math.exp(1) + math.exp(0.5))
    assert float(probability[0]) == pytest.approx(expected, abs=1e-6)


def test_scores_are_probabilities_and_a_batch_equals_one_by_one(tiny_model, clips):
    loaded = RUNTIME.load(str(tiny_model))
    before = DEVICE_LOCK.passes
    batched = score(loaded, clips, QUESTION, batch_size=4)
    assert DEVICE_LOCK.passes - before == math.ceil(len(clips) / 4)  # ONE forward pass per batch
    single = score(loaded, clips, QUESTION, batch_size=1)
    assert len(batched) == len(clips) == 5
    assert all(0.0 <= p <= 1.0 for p in batched)
    assert max(abs(a - b) for a, b in zip(batched, single)) < 1e-4


def test_rows_of_different_lengths_still_match(tiny_smolvlm, clips):
    """Left padding: a row with a longer prompt beside a shorter one scores as it does alone."""
    loaded = RUNTIME.load(str(tiny_smolvlm))
    long_clip = clips[0]
    sample = clips[1].sample
    short_clip = replace(clips[1], sample=media.FrameSample(sample.indices[:1], sample.timestamps[:1]), frames=clips[1].frames[:1])
    together = score(loaded, [long_clip, short_clip], QUESTION, batch_size=2)
    alone = [score(loaded, [c], QUESTION)[0] for c in (long_clip, short_clip)]
    assert max(abs(a - b) for a, b in zip(together, alone)) < 1e-4


def test_a_set_cancel_event_stops_before_the_forward_pass(tiny_smolvlm, clips):
    loaded = RUNTIME.load(str(tiny_smolvlm))
    cancel = threading.Event()
    cancel.set()
    before = DEVICE_LOCK.passes
    with pytest.raises(GenerationCancelled):
        score(loaded, clips, QUESTION, cancel=cancel)
    assert DEVICE_LOCK.passes == before


def test_a_prompt_longer_than_the_context_is_refused(tiny_smolvlm, clips, monkeypatch):
    loaded = RUNTIME.load(str(tiny_smolvlm))
    monkeypatch.setattr(loaded, "spec", replace(loaded.spec, context_length=20))
    with pytest.raises(InputTooLongError, match="fewer frames per window"):
        score(loaded, clips[:1], QUESTION)


def test_bad_options_are_refused(tiny_smolvlm):
    tokenizer = RUNTIME.load(str(tiny_smolvlm)).tokenizer
    with pytest.raises(BadInputError):
        answer_token_ids(tokenizer, ("yes",))
    with pytest.raises(BadInputError):
        answer_token_ids(tokenizer, ("yes", "yes"))
