"""Highlights that hear, captions and transcript exports (issue 17, items 2, 3 and 5).

Real parts: the tiny checkpoints of both families score real prompts (the processor's own
output is read back), the bundled ffmpeg burns the captions and PyAV decodes the reel. The
transcripts here are VALUES (pipelines.speech.transcript): transcription has its own tests.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest

from pipelines import media, scoring
from pipelines.errors import BadInputError
from pipelines.highlights import make_windows
from pipelines.highlights.cache import ScoreCache
from pipelines.highlights.captions import CaptionLayout, group_cues, reel_captions, timed_words
from pipelines.highlights.hearing import NOTHING_SAID, cut_to_tokens, plan_hearing, said_line, speech_model
from pipelines.highlights.pipeline import HighlightRequest, analyse, make_highlights
from pipelines.highlights.reframe import ReelShape, crop_paths
from pipelines.highlights import render as render_module
from pipelines.highlights.render import reel_size, render_reel
from pipelines.highlights.selection import Segment
from pipelines.limits import LIMITS
from pipelines.runtime import Runtime
from pipelines.speech.transcript import Phrase, Transcript, Word

from . import media_factory
from .highlights_server import serve_highlights
from .test_frame_features import counting

RUNTIME = Runtime("cpu", "fp32")
REPO = Path(__file__).resolve().parents[1]


def _words(start: float, texts: list[str], step: float = 0.4) -> tuple[Word, ...]:
    return tuple(Word(start + k * step, start + k * step + step * 0.8, t) for k, t in enumerate(texts))


def talk(phrases: list[tuple[float, str]], model: str = "test-asr") -> Transcript:
    """A transcript with word times: each phrase's words 0.4 s apart from its start."""
    built = []
    for start, text in phrases:
        words = _words(start, text.split())
        built.append(Phrase(words[0].start, words[-1].end, text, words))
    return Transcript(tuple(built), model, "en")


# =============================================================================================
# What each window hears (pure)
# =============================================================================================


def test_each_window_hears_its_own_words_once():
    transcript = talk([(0.2, "first words here"), (4.1, "second bit"), (8.5, "the end")])
    windows = make_windows(10.0, 4.0)
    hearing = plan_hearing("auto", transcript, windows)
    assert hearing.used and hearing.texts == ("first words here", "second bit", "the end")
    lines = hearing.lines(lambda text: len(text.split()))
    assert lines[0] == 'Said in this part: "first words here"'
    assert hearing.cache_part() and plan_hearing("off", transcript, windows).cache_part() == {}
    off = plan_hearing("off", transcript, windows)
    assert not off.used and off.texts == hearing.texts and off.lines(len) == () and "off" in off.note


def test_silence_is_said_and_a_transcript_without_speech_is_not_used():
    windows = make_windows(10.0, 5.0)
    hearing = plan_hearing("on", talk([(0.5, "only at the start")]), windows)
    assert hearing.lines(lambda t: len(t.split()))[1] == NOTHING_SAID
    quiet = plan_hearing("auto", Transcript((), "asr", None, "No speech was heard."), windows)
    assert not quiet.used and quiet.note.startswith("No speech was heard.")
    nothing = plan_hearing("auto", None, windows)  # no speech model: nothing heard, nothing in the key
    assert not nothing.used and nothing.texts == () and nothing.cache_part() == {}


def test_one_rule_picks_the_speech_model_for_the_cli_and_the_tab():
    assert speech_model(None, "whisper-tiny", "auto", False) is None  # nothing asks: no transcription
    assert speech_model(None, "whisper-tiny", "auto", True) == "whisper-tiny"  # captions ask
    assert speech_model(None, "whisper-tiny", "on", False) == "whisper-tiny"  # speech on asks
    assert speech_model("whisper-base", "whisper-tiny", "off", False) == "whisper-base"  # chosen wins
    assert speech_model("off", "whisper-tiny", "on", True) is None  # "off" forbids
    assert speech_model(None, "off", "on", True) is None  # an app started with --asr off


def test_speech_is_cut_at_a_word_to_the_token_budget():
    text = " ".join(f"word{k}" for k in range(500))
    count = lambda t: 2 * len(t.split())  # noqa: E731 -- two tokens per word
    cut = cut_to_tokens(text, count, 61)
    assert count(cut) <= 61 and text.startswith(cut) and len(cut.split()) >= 25
    line = said_line(text, count, 61)
    assert line.endswith('…"') and cut in line
    assert said_line("short one", count, 61) == 'Said in this part: "short one"'
    unspaced = "说" * 500  # no spaces to cut at: cut by characters
    assert 36 <= len(cut_to_tokens(unspaced, len, 40)) <= 40 and said_line(unspaced, len, 40).endswith('…"')


def test_speech_settings_are_checked_before_any_work(short_video):
    base = dict(video=str(short_video), model="unused", criteria="a talk", target_seconds=2.0)
    for bad, message in [(dict(speech="loud"), "Speech must be one of"),
                         (dict(speech="on"), "no speech model"),
                         (dict(captions=True), "Captions need a transcript"),
                         (dict(asr_model="x", captions=True, caption_style="karaoke"), "caption style")]:
        with pytest.raises(BadInputError, match=message):
            analyse(HighlightRequest(**base, **bad), RUNTIME, cache=ScoreCache(enabled=False))


# =============================================================================================
# Prompts on the real checkpoints
# =============================================================================================


class PromptSpy:
    """Records the token ids of every batch the real processor makes (the pass still runs)."""

    def __init__(self, monkeypatch):
        self.batches: list = []
        real = scoring.encode_batch

        def spy(loaded, builts, detail):
            inputs = real(loaded, builts, detail)
            self.batches.append((loaded, inputs))
            return inputs

        monkeypatch.setattr(scoring, "encode_batch", spy)

    def rows(self):
        for loaded, inputs in self.batches:
            for ids, mask in zip(inputs["input_ids"], inputs["attention_mask"]):
                real = ids[mask.bool()]
                yield loaded, real, loaded.tokenizer.decode(real)


def _request(video, model, **extra) -> HighlightRequest:
    return HighlightRequest(video=str(video), model=str(model), criteria="when the speaker explains the method",
                            window_seconds=2.0, frames_per_window=2, target_seconds=2.0, batch_size=2, **extra)


def test_window_prompts_hold_their_text_and_stay_within_the_context(tiny_model, short_video, monkeypatch):
    """A transcript far longer than any window could hold (and with media tokens in it): each
    window's prompt says its own words, cut to the budget, and fits the model's context."""
    chatter = " ".join(f"w{k} <image> <|video|>" for k in range(4000))
    transcript = Transcript((Phrase(0.0, 2.0, chatter),
                             Phrase(2.1, 3.9, "the middle window talks about the method"),
                             Phrase(4.1, 6.0, "")), "test-asr", "en")
    spy = PromptSpy(monkeypatch)
    heard = analyse(_request(short_video, tiny_model), RUNTIME, cache=ScoreCache(enabled=False), transcript=transcript)
    assert heard.speech_used and heard.said[1] == "the middle window talks about the method"
    rows = list(spy.rows())
    assert len(rows) == len(heard.windows) == 3
    texts = [text for _, _, text in rows]
    assert 'Said in this part: "w0' in texts[0] and "…" in texts[0]
    assert 'Said in this part: "the middle window talks about the method"' in texts[1]
    assert NOTHING_SAID in texts[2]
    loaded = rows[0][0]
    budget = int(LIMITS.speech_tokens.value)
    for _, ids, _ in rows:
        assert len(ids) < loaded.spec.context_length
    # What the transcript says cannot add media: the same media tokens as without speech.
    heard_media = [sum(int((ids == t).sum()) for t in loaded.media_token_ids()) for _, ids, _ in rows]
    spy.batches.clear()
    analyse(_request(short_video, tiny_model, speech="off"), RUNTIME, cache=ScoreCache(enabled=False),
            transcript=transcript)
    plain = list(spy.rows())
    assert [sum(int((ids == t).sum()) for t in loaded.media_token_ids()) for _, ids, _ in plain] == heard_media
    assert all("Said in this part" not in text for _, _, text in plain)
    # The first window's speech fills most of the budget and never more (plus the line's own words).
    extra = len(rows[0][1]) - len(plain[0][1])
    assert 0.75 * budget <= extra <= budget + 24


def test_the_score_cache_keeps_heard_and_unheard_scores_apart(tiny_smolvlm, short_video, tmp_path, monkeypatch):
    cache = ScoreCache(tmp_path)
    transcript = talk([(0.3, "hello and welcome"), (2.4, "now the method"), (4.2, "thanks for watching")])
    off = analyse(_request(short_video, tiny_smolvlm, speech="off"), RUNTIME, cache=cache, transcript=transcript)
    assert not off.from_cache and not off.speech_used
    with counting(monkeypatch, tiny_smolvlm) as work:  # frame features are shared: text is not a pixel
        on = analyse(_request(short_video, tiny_smolvlm), RUNTIME, cache=cache, transcript=transcript)
    assert not on.from_cache and on.speech_used and on.visual != off.visual
    assert work == {"decodes": 0, "vision": 0, "frames": 0}
    again_off = analyse(_request(short_video, tiny_smolvlm, speech="off"), RUNTIME, cache=cache, transcript=transcript)
    again_on = analyse(_request(short_video, tiny_smolvlm), RUNTIME, cache=cache, transcript=transcript)
    assert again_off.from_cache and again_off.visual == off.visual
    assert again_on.from_cache and again_on.visual == on.visual
    other = replace(transcript, phrases=transcript.phrases[:1])  # other words: other scores
    assert not analyse(_request(short_video, tiny_smolvlm), RUNTIME, cache=cache, transcript=other).from_cache


# =============================================================================================
# Captions
# =============================================================================================


def test_lines_are_at_most_two_and_fit_and_words_are_short_groups():
    words = list(_words(0.0, ("so today I want to show you how the new method works in practice and why "
                              "it matters. Then we look at results").split(), step=0.3))
    cues = group_cues(words, "lines", max_chars=24)
    assert all(1 <= len(c.lines) <= 2 and all(len(line) <= 24 for line in c.lines) for c in cues)
    assert " ".join(c.text for c in cues) == " ".join(w.text for w in words)  # every word, once, in order
    assert all(a.end <= b.start for a, b in zip(cues, cues[1:])) and all(c.end > c.start for c in cues)
    assert any(c.text.endswith("matters.") for c in cues)  # a sentence ends a caption
    short = group_cues(words, "words", max_chars=24)
    assert all(len(c.lines) == 1 and len(c.text.split()) <= 3 for c in short) and len(short) > len(cues)
    paused = group_cues([Word(0, 0.3, "before"), Word(2.0, 2.3, "after")], "lines", 24)
    assert [c.text for c in paused] == ["before", "after"]


def test_phrases_without_word_times_share_their_time_out():
    words = timed_words(Transcript((Phrase(1.0, 3.0, "aa bbbb cc"),)))
    assert [w.text for w in words] == ["aa", "bbbb", "cc"]
    assert words[0].start == 1.0 and words[-1].end == pytest.approx(3.0)
    assert words[1].end - words[1].start == pytest.approx(2 * (words[0].end - words[0].start))


@pytest.mark.parametrize("aspect", ["source", "9:16", "1:1", "16:9"])
def test_the_caption_band_lies_inside_every_reel_frame(aspect):
    size = (640, 360) if aspect == "source" else ReelShape(aspect).output_size
    layout = CaptionLayout.for_frame(size, aspect)
    assert 0 <= layout.band_top and layout.band_top + layout.band_height <= size[1]
    assert layout.font_px >= min(size) * 0.06  # large: readable on a phone
    if aspect == "9:16":  # above the apps' buttons and titles
        assert layout.band_top + layout.band_height <= 0.8 * size[1]


@pytest.fixture(scope="module")
def talk_video(media_dir) -> Path:
    return media_factory.make_video(media_dir / "talk-captions.mp4", seconds=12, fps=10, size=(320, 180), audio=True)


def _band_frames(path: Path, top: int, height: int) -> dict[float, np.ndarray]:
    """Reel time (rounded to 0.1 s) -> the caption band's pixels."""
    bands = {}
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            bands[round(float(frame.pts * frame.time_base), 1)] = frame.to_ndarray(format="rgb24")[top:top + height].astype(int)
    return bands


@pytest.mark.parametrize("aspect, per_pass", [("source", None), ("9:16", None), ("source", 1)])
def test_captions_show_where_words_are_said_and_nowhere_else(talk_video, tmp_path, monkeypatch, aspect, per_pass):
    """``per_pass`` 1: each segment rendered apart and the parts joined (a long reel): each
    part's captions are on its own timeline."""
    if per_pass:
        monkeypatch.setattr(render_module, "MAX_INPUTS_PER_PASS", per_pass)
    info = media.probe_video(str(talk_video))
    transcript = talk([(1.0, "hello there"), (7.0, "second part")])  # source time
    segments = [Segment(0.0, 4.0, 0.9), Segment(6.0, 10.0, 0.8)]  # reel: 0-4, 4-8
    shape = ReelShape(aspect)
    captions = reel_captions(transcript, segments, "lines", reel_size(info, shape), aspect)
    assert [(round(c.start, 2), c.text) for c in captions.cues] == [(1.0, "hello there"), (5.0, "second part")]
    crops = crop_paths(shape, segments, info, None)
    plain = render_reel(talk_video, segments, tmp_path / "plain.mp4", info, shape=shape, crops=crops)
    burned = render_reel(talk_video, segments, tmp_path / "burned.mp4", info, shape=shape, crops=crops, captions=captions)
    layout = captions.layout
    a, b = _band_frames(plain, layout.band_top, layout.band_height), _band_frames(burned, layout.band_top, layout.band_height)
    assert set(a) == set(b) and abs(max(a) - 7.9) < 0.15  # same frames, reel length kept
    differs = {t: float(np.abs(a[t] - b[t]).mean()) for t in a}
    said = [1.2, 1.5, 5.2, 5.5]
    quiet = [0.3, 0.6, 3.0, 3.5, 4.3, 7.0, 7.5]
    # Two encodes of one picture differ by ~1-1.5 levels (x264's own choices); letters by ~10.
    assert all(differs[t] > 5.0 for t in said), differs
    assert all(differs[t] < 2.5 for t in quiet), differs
    white = [(b[t] > 235).all(axis=-1).mean() for t in said]  # white letters, black outline
    assert all(share > 0.005 for share in white)


# =============================================================================================
# Exports and the whole run
# =============================================================================================

_SRT_TIME = r"(\d\d):(\d\d):(\d\d)[,.](\d\d\d)"


def parse_cues(text: str, vtt: bool) -> list[tuple[int | None, float, float, str]]:
    """(number, start, end, text) of every cue; asserts the format's structure on the way."""
    blocks = [b for b in text.strip().split("\n\n") if b.strip()]
    if vtt:
        assert blocks and blocks[0].strip() == "WEBVTT"
        blocks = blocks[1:]
    cues = []
    for block in blocks:
        lines = block.split("\n")
        number = None if vtt else int(lines.pop(0))
        match = re.fullmatch(f"{_SRT_TIME} --> {_SRT_TIME}", lines[0])
        assert match, lines[0]
        assert ("." if vtt else ",") in lines[0]
        h1, m1, s1, f1, h2, m2, s2, f2 = map(int, match.groups())
        cues.append((number, h1 * 3600 + m1 * 60 + s1 + f1 / 1000, h2 * 3600 + m2 * 60 + s2 + f2 / 1000,
                     " ".join(lines[1:])))
        assert lines[1:] and all(line.strip() for line in lines[1:])
    return cues


def check_subtitles(text: str, vtt: bool, length: float) -> list[tuple]:
    cues = parse_cues(text, vtt)
    if not vtt:
        assert [c[0] for c in cues] == list(range(1, len(cues) + 1))
    assert all(0 <= start <= end <= length + 1e-3 for _, start, end, _ in cues)
    assert all(a[1] <= b[1] and a[2] <= b[1] + 1e-3 for a, b in zip(cues, cues[1:]))
    return cues


def test_a_run_with_speech_writes_captions_subtitles_and_window_text(tiny_smolvlm, video_20s, tmp_path):
    transcript = talk([(1.0, "welcome to the talk"), (6.2, "here is the method. it works"), (15.0, "thank you all")])
    request = HighlightRequest(video=str(video_20s), model=str(tiny_smolvlm), criteria="the method",
                               window_seconds=5.0, frames_per_window=2, threshold=0.0, batch_size=4, snap="none",
                               captions=True, caption_style="words")
    result = make_highlights(request, RUNTIME, tmp_path / "out", cache=ScoreCache(enabled=False), transcript=transcript)
    assert {"transcript_srt", "transcript_vtt", "reel_transcript_srt", "reel_transcript_vtt"} <= set(result.files)
    document = json.loads(result.files["json"].read_text())
    assert [w["text"] for w in document["windows"]] == ["welcome to the talk", "here is the method. it works", "",
                                                       "thank you all"]
    assert document["speech"]["used_in_scoring"] and document["speech"]["captions"] == "words"
    assert Transcript.from_dict(document["transcript"]) == transcript
    length = result.selected_seconds
    source = check_subtitles(result.files["transcript_srt"].read_text(), False, 20.0)
    assert [c[3] for c in source] == ["welcome to the talk", "here is the method. it works", "thank you all"]
    check_subtitles(result.files["transcript_vtt"].read_text(), True, 20.0)
    reel = check_subtitles(result.files["reel_transcript_srt"].read_text(), False, length)
    assert check_subtitles(result.files["reel_transcript_vtt"].read_text(), True, length)
    assert " ".join(c[3] for c in reel) == " ".join(c[3] for c in source)  # every window was kept
    with av.open(str(result.reel)) as container:
        assert float(container.duration / 1e6) == pytest.approx(length, abs=0.15)


def test_a_video_without_sound_gets_a_note_not_an_error(tiny_smolvlm, tiny_whisper, media_dir, tmp_path):
    mute = media_factory.make_video(media_dir / "mute-speech.mp4", seconds=4, fps=10, size=(128, 96))
    request = HighlightRequest(video=str(mute), model=str(tiny_smolvlm), criteria="anything", window_seconds=2.0,
                               frames_per_window=2, target_seconds=2.0, captions=True, asr_model=str(tiny_whisper))
    seen: list[tuple[float, str]] = []
    result = make_highlights(request, RUNTIME, tmp_path / "out", cache=ScoreCache(tmp_path / "cache"),
                             on_progress=lambda fraction, message: seen.append((fraction, message)))
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))  # the bar never moves back
    assert any("soundtrack" in message for _, message in seen)  # transcription's own words reach it
    document = json.loads(result.files["json"].read_text())
    assert document["speech"]["note"].startswith("This video has no soundtrack.")
    assert not document["speech"]["used_in_scoring"] and result.reel is not None
    assert result.files["transcript_srt"].read_text() == ""
    assert check_subtitles(result.files["reel_transcript_vtt"].read_text(), True, 2.0) == []


@pytest.mark.slow  # a real CLI process / an app server, like the other such tests
def test_the_done_when_command_writes_a_captioned_reel_subtitles_and_window_text(tiny_smolvlm, tiny_whisper,
                                                                               speech_video, tmp_path):
    """Issue 17's command, end to end: the real CLI, the tiny VLM and the tiny Whisper (random
    weights: what it "hears" is nonsense, but every step is the real one)."""
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLMS_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "pipelines.highlights", str(speech_video), "--model", str(tiny_smolvlm),
                           "--asr", str(tiny_whisper), "--criteria", "when the speaker talks about the ball",
                           "--target-seconds", "30", "--captions", "--out", str(out), "--quiet", "--device", "cpu"],
                          capture_output=True, text=True, env=env, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    folder = out / speech_video.stem
    for name in ("highlights.mp4", "transcript.srt", "transcript.vtt", "reel-transcript.srt", "reel-transcript.vtt"):
        assert (folder / name).is_file(), name
    document = json.loads((folder / "highlights.json").read_text())
    transcript = Transcript.from_dict(document["transcript"])
    assert document["speech"]["captions"] == "lines" and "used_in_scoring" in document["speech"]
    assert [w["text"] for w in document["windows"]] == [transcript.text_between(w["start"], w["end"])
                                                       for w in document["windows"]]
    cues = check_subtitles((folder / "transcript.srt").read_text(), False, document["duration"])
    assert len(cues) == len([p for p in transcript.phrases if p.text.strip()])
    check_subtitles((folder / "transcript.vtt").read_text(), True, document["duration"])
    check_subtitles((folder / "reel-transcript.srt").read_text(), False, document["selected_seconds"])
    with av.open(str(folder / "highlights.mp4")) as container:
        assert container.streams.video and container.streams.audio


@pytest.fixture(scope="module")
def speech_app(tiny_smolvlm, tiny_whisper, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:  # the app's own cache folder, restored after
        patch.setenv("VLMS_CACHE_DIR", str(tmp_path_factory.mktemp("speech-cache")))
        with serve_highlights(tiny_smolvlm, asr_model=str(tiny_whisper)) as (url, _demo):
            yield url


@pytest.mark.slow  # a real CLI process / an app server, like the other such tests
def test_the_highlights_tab_hears_captions_and_offers_the_subtitles(speech_app, speech_video, tiny_smolvlm):
    from gradio_client import Client, handle_file

    client = Client(speech_app, verbose=False)
    old_inputs = (handle_file(str(speech_video)), str(tiny_smolvlm), "the speaker", 3, 0, 2, "Target length", 30, 0.5,
                  0, "none", "fixed", 0.3)
    try:
        # Speech "on" with no model picked: the app's own speech model (--asr) is used.
        _summary, _svg, table, reel, files = client.predict(*old_inputs, "9:16", "center", "off", "on", True, "words",
                                                            api_name="/highlights")[:5]
        names = {Path(f).name for f in files}
        assert {"transcript.srt", "transcript.vtt", "reel-transcript.srt", "reel-transcript.vtt"} <= names
        with av.open(reel) as container:
            stream = container.streams.video[0]
            assert (stream.codec_context.width, stream.codec_context.height) == (1080, 1920)
        # The edited table re-renders with captions from the kept transcript (no model call).
        files = client.predict(table, "1:1", "center", True, "lines", api_name="/highlights_rerender")[4]
        assert "reel-transcript.vtt" in {Path(f).name for f in files}
        # Suggested criteria with speech on: the transcript (cached by now) goes into the prompt.
        suggested = client.predict(handle_file(str(speech_video)), str(tiny_smolvlm), "off", "on", False,
                                   api_name="/highlights_criteria")
        assert isinstance(suggested, str) and suggested.strip()
        # The old call (no speech inputs): nothing is transcribed, as before.
        files = client.predict(*old_inputs, "source", "center", api_name="/highlights")[4]
        assert not any(Path(f).name.startswith(("transcript", "reel-transcript")) for f in files)
    finally:
        client.close()


def test_suggested_criteria_read_what_is_said(tiny_smolvlm, short_video, monkeypatch):
    from pipelines.highlights import criteria as criteria_module

    asked = []
    real = criteria_module.start_chat

    def spy(request, runtime, cancel):
        asked.append(request.turns[0].text)
        return real(request, runtime, cancel)

    monkeypatch.setattr(criteria_module, "start_chat", spy)
    transcript = talk([(0.5, "today we explain the method"), (3.0, "and then we celebrate")])
    request = HighlightRequest(video=str(short_video), model=str(tiny_smolvlm), auto_criteria=True, window_seconds=3.0,
                               frames_per_window=2, target_seconds=3.0)
    try:
        analyse(request, RUNTIME, cache=ScoreCache(enabled=False), transcript=transcript)
    except BadInputError:  # a random model may suggest nothing; the prompt was still sent
        pass
    assert asked and '"today we explain the method and then we celebrate"' in asked[0]
    assert asked[0].endswith(criteria_module.PROMPT)
    long = criteria_module.heard_prompt("word " * 2000)
    assert len(long) < criteria_module.HEARD_CHARS + len(criteria_module.PROMPT) + 80 and "…" in long
    assert criteria_module.heard_prompt("  ") == criteria_module.PROMPT
