"""Transcription (issue 17): a tiny random Whisper (real architecture) through transformers' own
speech-recognition pipeline, on videos whose soundtrack is espeak-ng speech at known times,
digital silence, a steady tone, or nothing. Offline; nothing is mocked."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pipelines import isolation, media, registry
from pipelines.errors import BadInputError, GenerationCancelled, ModelUnavailableError
from pipelines.runtime import Runtime
from pipelines.speech import Transcript, transcribe
from pipelines.speech import recognition
from pipelines.speech.asr import load_asr, placement
from tests import media_factory, tiny_models
from tests.conftest import SPEECH_SECONDS

RUNTIME = Runtime(device="cpu", dtype="fp32")
MARGIN = recognition.WORD_MARGIN_S + 0.05


@pytest.fixture(scope="module")
def heard(speech_video, tiny_whisper, tmp_path_factory):
    """The speech video transcribed once (no cache), with every progress call it made."""
    calls: list[tuple[float, str]] = []
    transcript = transcribe(speech_video, str(tiny_whisper), RUNTIME, progress=lambda f, m: calls.append((f, m)),
                            use_cache=False)
    return transcript, calls


def _all_times(transcript: Transcript) -> list[float]:
    times = []
    for phrase in transcript.phrases:
        times.append(phrase.start)
        for word in phrase.words:
            times += [word.start, word.end]
        times.append(phrase.end)
    return times


def _near_speech(start: float, end: float, spans) -> bool:
    return any(start <= s_end + MARGIN and end >= s_start - MARGIN for s_start, s_end in spans)


# ------------------------------------------------------------------------------------------------
# The real pipeline on speech
# ------------------------------------------------------------------------------------------------


def test_speech_gives_a_transcript_with_monotonic_times_inside_the_video(heard):
    transcript, _ = heard
    assert not transcript.empty and transcript.note == ""
    assert transcript.language  # Whisper detected one (the tiny one knows English and French)
    times = _all_times(transcript)
    assert times == sorted(times), "times must never go backwards"
    assert 0.0 <= times[0] and times[-1] <= SPEECH_SECONDS
    for phrase in transcript.phrases:
        assert phrase.start <= phrase.end and phrase.text.strip()
        assert phrase.words, "the tiny checkpoint names alignment heads: words carry times"
        assert phrase.text == " ".join(w.text for w in phrase.words)
        assert phrase.start == phrase.words[0].start and phrase.end == phrase.words[-1].end


def test_no_word_is_placed_in_digital_silence(heard, speech_spans):
    """Whisper (a random one most of all) puts words in silence; those are dropped."""
    transcript, _ = heard
    words = [w for p in transcript.phrases for w in p.words]
    assert words
    for word in words:
        assert _near_speech(word.start, word.end, speech_spans), (word, speech_spans)


def test_progress_rises_to_one_and_names_the_windows(heard):
    _, calls = heard
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert any("Transcribing: 1/1" in message for _, message in calls)


def test_text_between_finds_what_was_said_around_a_word(heard):
    transcript, _ = heard
    word = transcript.phrases[0].words[0]
    assert word.text in transcript.text_between(word.start - 0.5, word.end + 0.5)
    assert transcript.text_between(SPEECH_SECONDS + 1, SPEECH_SECONDS + 5) == ""


def test_round_trips_through_json(heard):
    transcript, _ = heard
    assert Transcript.from_dict(json.loads(json.dumps(transcript.to_dict()))) == transcript


def test_segment_timestamps_when_the_checkpoint_cannot_time_words(speech_video, tmp_path, speech_spans):
    checkpoint = tiny_models.build_tiny_whisper(tmp_path / "segments", word_timestamps=False)
    assert not load_asr(str(checkpoint), "cpu", "fp32").word_timestamps
    transcript = transcribe(speech_video, str(checkpoint), RUNTIME, use_cache=False)
    assert transcript.phrases and all(not p.words for p in transcript.phrases)
    times = _all_times(transcript)
    assert times == sorted(times) and 0.0 <= times[0] and times[-1] <= SPEECH_SECONDS
    assert all(_near_speech(p.start, p.end, speech_spans) for p in transcript.phrases)


def test_a_failure_of_word_timing_falls_back_to_segment_times(speech_video, tiny_whisper, caplog):
    """Two forced tokens make transformers' word-time decoding raise IndexError (5.23): the words
    then come with segment times instead of failing the request."""
    soundtrack = recognition.read_soundtrack(speech_video)
    asr = load_asr(str(tiny_whisper), "cpu", "fp32")
    with caplog.at_level("WARNING", logger="pipelines.speech.recognition"):
        transcript = recognition.recognize(asr, soundtrack.samples, soundtrack.rate, SPEECH_SECONDS,
                                           generate_kwargs={"min_new_tokens": 2, "max_new_tokens": 2})
    if "Word timestamps failed" in caplog.text:
        assert all(not phrase.words for phrase in transcript.phrases)
    times = _all_times(transcript)
    assert times == sorted(times) and all(0.0 <= t <= SPEECH_SECONDS for t in times)


def test_long_audio_is_heard_in_overlapping_windows(tiny_whisper, tmp_path):
    seconds, lines = 65.0, ((3.0, "First part."), (33.0, "Second part of the talk."), (60.0, "The end."))
    video = media_factory.make_speech_video(tmp_path / "long.mp4", seconds, lines)
    calls: list[tuple[float, str]] = []
    transcript = transcribe(video, str(tiny_whisper), RUNTIME, progress=lambda f, m: calls.append((f, m)),
                            use_cache=False)
    windows = recognition.window_count(seconds)
    assert windows == 3
    assert any(f"Transcribing: {windows}/{windows}" in message for _, message in calls)
    times = _all_times(transcript)
    assert times == sorted(times) and 0.0 <= times[0] and times[-1] <= seconds
    spans = media_factory.speech_spans(lines)
    assert all(_near_speech(w.start, w.end, spans) for p in transcript.phrases for w in p.words)


def test_window_count_matches_the_pipelines_own_chunking():
    from transformers import WhisperFeatureExtractor
    from transformers.pipelines.automatic_speech_recognition import chunk_iter

    extractor = WhisperFeatureExtractor()
    rate = extractor.sampling_rate
    for seconds in (1.0, 29.9, 30.0, 30.5, 50.0, 51.0, 65.0, 125.0):
        samples = np.zeros(int(seconds * rate), dtype=np.float32)
        chunks = list(chunk_iter(samples, extractor, int(recognition.CHUNK_S * rate), int(recognition.STRIDE_S * rate),
                                 int(recognition.STRIDE_S * rate)))
        assert recognition.window_count(seconds) == len(chunks), seconds


# ------------------------------------------------------------------------------------------------
# Nothing to hear: an empty transcript and a note, and the model is never loaded
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def unloadable_whisper(tmp_path_factory) -> Path:
    """A directory the registry accepts as Whisper (config.json says so) but that has no weights:
    anything that tries to load it fails, so a transcript made with it proves no model ran."""
    folder = tmp_path_factory.mktemp("no-weights")
    (folder / "config.json").write_text(json.dumps({"model_type": "whisper"}))
    return folder


@pytest.mark.parametrize("fixture, note", [
    ("mute_video", recognition.NO_SOUNDTRACK),
    ("silent_video", recognition.SILENT),
    ("short_video", recognition.STEADY),  # a 440 Hz tone
])
def test_nothing_to_hear_gives_an_empty_transcript_and_a_note(request, fixture, note, unloadable_whisper):
    transcript = transcribe(request.getfixturevalue(fixture), str(unloadable_whisper), RUNTIME, use_cache=False)
    assert transcript.empty and transcript.phrases == () and transcript.note == note


def test_the_unloadable_checkpoint_really_fails_to_load(speech_video, unloadable_whisper):
    with pytest.raises(ModelUnavailableError):
        transcribe(speech_video, str(unloadable_whisper), RUNTIME, use_cache=False)


def test_speechless_reason_on_samples():
    rate = media.SPEECH_RATE
    t = np.arange(3 * rate) / rate
    assert recognition.speechless_reason(np.zeros(0, np.float32), rate) == "The soundtrack is empty."
    assert recognition.speechless_reason(np.zeros(3 * rate, np.float32), rate) == recognition.SILENT
    assert recognition.speechless_reason(1e-4 * np.sin(2 * np.pi * 300 * t), rate) == recognition.SILENT  # -83 dBFS
    assert recognition.speechless_reason(0.3 * np.sin(2 * np.pi * 300 * t), rate) == recognition.STEADY
    syllables = 0.3 * np.sin(2 * np.pi * 300 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))  # 4 Hz like speech
    assert recognition.speechless_reason(syllables, rate) == ""


# ------------------------------------------------------------------------------------------------
# Decoding the soundtrack
# ------------------------------------------------------------------------------------------------


def test_soundtrack_is_16k_mono_and_speech_starts_where_it_was_placed(speech_video, speech_spans):
    soundtrack = recognition.read_soundtrack(speech_video)
    assert soundtrack.rate == 16_000 and soundtrack.samples.dtype == np.float32 and soundtrack.samples.ndim == 1
    assert abs(soundtrack.seconds - SPEECH_SECONDS) < 0.1
    levels = recognition.levels_db(soundtrack.samples, soundtrack.rate)
    sounding = np.flatnonzero(levels > recognition.SILENCE_DB) * recognition.LEVEL_FRAME_S
    assert abs(sounding[0] - speech_spans[0][0]) < 0.05
    assert abs(sounding[-1] - speech_spans[-1][1]) < 0.1


def test_a_file_that_is_not_a_video_is_a_typed_error(tmp_path, tiny_whisper):
    image = media_factory.make_image(tmp_path / "photo.png", fmt="PNG")
    with pytest.raises(BadInputError, match="photo.png"):
        transcribe(image, str(tiny_whisper), RUNTIME, use_cache=False)
    with pytest.raises(BadInputError, match="gone.mp4"):
        transcribe(tmp_path / "gone.mp4", str(tiny_whisper), RUNTIME, use_cache=False)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(BadInputError, match="empty.mp4 is empty"):
        transcribe(tmp_path / "empty.mp4", str(tiny_whisper), RUNTIME, use_cache=False)


# ------------------------------------------------------------------------------------------------
# The cache
# ------------------------------------------------------------------------------------------------


def test_second_call_comes_from_the_cache_without_decoding_or_the_model(speech_video, tiny_whisper, tmp_path, heard):
    first = transcribe(speech_video, str(tiny_whisper), RUNTIME, cache_dir=tmp_path)
    assert first == heard[0]
    assert list((tmp_path / "speech").glob("transcript-*.json"))
    # The same bytes under another name still hit. A set cancel event would stop the decoding child
    # and the model at once: the hit returns before either.
    renamed = shutil.copy(speech_video, tmp_path / "renamed.mp4")
    stopped = threading.Event()
    stopped.set()
    calls: list[str] = []
    started = time.perf_counter()
    again = transcribe(renamed, str(tiny_whisper), RUNTIME, cache_dir=tmp_path, cancel=stopped,
                       progress=lambda f, m: calls.append(m))
    assert again == first and calls == ["Transcript from the cache"]
    assert time.perf_counter() - started < 0.5


def test_a_damaged_cache_entry_is_recomputed(speech_video, tiny_whisper, tmp_path, heard):
    transcribe(speech_video, str(tiny_whisper), RUNTIME, cache_dir=tmp_path)
    for entry in (tmp_path / "speech").glob("transcript-*.json"):
        entry.write_text("{not json")
    assert transcribe(speech_video, str(tiny_whisper), RUNTIME, cache_dir=tmp_path) == heard[0]


def test_a_checkpoint_changed_in_place_is_not_answered_from_the_cache(speech_video, tiny_whisper, tmp_path):
    checkpoint = Path(shutil.copytree(tiny_whisper, tmp_path / "whisper"))
    transcribe(speech_video, str(checkpoint), RUNTIME, cache_dir=tmp_path / "cache")
    config = checkpoint / "generation_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "max_new_tokens": 8}))
    stopped = threading.Event()
    stopped.set()
    with pytest.raises(GenerationCancelled):  # a miss: it set out to decode again
        transcribe(speech_video, str(checkpoint), RUNTIME, cache_dir=tmp_path / "cache", cancel=stopped)


def test_empty_results_are_cached_too(silent_video, unloadable_whisper, tmp_path):
    transcribe(silent_video, str(unloadable_whisper), RUNTIME, cache_dir=tmp_path)
    (entry,) = (tmp_path / "speech").glob("transcript-*.json")
    assert json.loads(entry.read_text())["note"] == recognition.SILENT


# ------------------------------------------------------------------------------------------------
# Cancel, bad names
# ------------------------------------------------------------------------------------------------


def test_cancel_during_transcription_stops_it_and_caches_nothing(speech_video, tiny_whisper, tmp_path):
    stop = threading.Event()

    def progress(fraction: float, message: str) -> None:
        if message.startswith("Transcribing"):
            stop.set()  # Whisper's next forward pass is refused

    with pytest.raises(GenerationCancelled):
        transcribe(speech_video, str(tiny_whisper), RUNTIME, progress=progress, cancel=stop, cache_dir=tmp_path)
    assert not list((tmp_path / "speech").glob("*.json"))


def test_cancel_before_start_stops_the_decoding(speech_video, tiny_whisper):
    stop = threading.Event()
    stop.set()
    with pytest.raises(GenerationCancelled):
        transcribe(speech_video, str(tiny_whisper), RUNTIME, cancel=stop, use_cache=False)


@pytest.mark.parametrize("name", ["whisper-huge-9", "openai/whisper-nope", "", "/no/such/dir"])
def test_bad_asr_model_names_are_user_worded_errors(name, speech_video):
    with pytest.raises(ModelUnavailableError, match="Unknown speech recognition model") as caught:
        transcribe(speech_video, name, RUNTIME, use_cache=False)
    assert "whisper-base" in str(caught.value) and "local Whisper checkpoint" in str(caught.value)


def test_a_vlm_checkpoint_is_not_a_speech_model(tiny_smolvlm, speech_video):
    with pytest.raises(ModelUnavailableError, match="takes a Whisper checkpoint"):
        transcribe(speech_video, str(tiny_smolvlm), RUNTIME, use_cache=False)


def test_registry_asr_section():
    assert {"whisper-tiny", "whisper-base", "whisper-small"} <= set(registry.ASR_REGISTRY)
    assert registry.DEFAULT_ASR_MODEL in registry.ASR_REGISTRY
    assert registry.resolve_asr("openai/whisper-tiny").key == "whisper-tiny"
    assert registry.resolve_asr("OpenAI/Whisper-Base").key == "whisper-base"
    assert not registry.asr_enabled("off") and not registry.asr_enabled(" None ") and registry.asr_enabled("whisper-tiny")
    # The ASR table is separate: a Whisper key is not a chat model, and the reverse.
    with pytest.raises(ModelUnavailableError):
        registry.resolve("whisper-tiny")
    with pytest.raises(ModelUnavailableError):
        registry.resolve_asr("smolvlm2-256m")


def test_asr_precision_follows_the_runtime_like_the_vlms():
    import torch

    from pipelines.devices import choose_dtype

    assert placement("whisper-tiny", "cpu", "fp32")[2] is torch.float32
    assert placement("whisper-tiny", "cpu", "bf16")[2] is torch.bfloat16
    assert placement("whisper-tiny", "cpu")[2] is choose_dtype("cpu")


def test_the_asr_cache_is_separate_from_the_vlm_cache(tiny_whisper, tiny_smolvlm):
    from pipelines import loading

    vlm = loading.load_model(str(tiny_smolvlm), "cpu", "fp32")
    asr = load_asr(str(tiny_whisper), "cpu", "fp32")
    assert load_asr(str(tiny_whisper), "cpu", "fp32") is asr  # cached
    assert loading.is_loaded(str(tiny_smolvlm), "cpu", "fp32") and loading.load_model(str(tiny_smolvlm), "cpu", "fp32") is vlm
    assert all(m.spec.family in ("smolvlm", "perception_lm") for m in loading.cached_models())


def test_tiny_whisper_reloads_offline_with_the_auto_classes(tiny_whisper):
    from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_whisper)
    model = AutoModelForSpeechSeq2Seq.from_pretrained(tiny_whisper)
    generation = model.generation_config
    assert model.config.model_type == "whisper" and model.config.num_mel_bins == 80
    assert processor.tokenizer.convert_tokens_to_ids("<|0.00|>") == generation.no_timestamps_token_id + 1
    assert processor.tokenizer.convert_tokens_to_ids("<|nocaptions|>") == generation.no_timestamps_token_id - 1
    assert generation.alignment_heads and set(generation.lang_to_id) == {"<|en|>", "<|fr|>"}
    assert sum(f.stat().st_size for f in Path(tiny_whisper).iterdir()) < 4_000_000


@pytest.mark.parametrize("size", sorted(tiny_models.WHISPER_PARAMS))
def test_full_size_whisper_stand_ins_have_the_published_parameter_counts(size):
    config, _, _ = tiny_models._whisper_parts(size)
    model = tiny_models._instantiate_whisper(config, device="meta")
    assert tiny_models._count(model) == tiny_models.WHISPER_PARAMS[size]
    assert model.config.vocab_size == 51865 and model.config.num_mel_bins == 80


def test_isolation_runs_the_soundtrack_reader_in_a_child(speech_video):
    """The decoder runs under the limits' memory cap: a cap too small for PyAV fails there, typed."""
    from pipelines.errors import DecodeError

    with pytest.raises(DecodeError):
        isolation.run(media.read_soundtrack, str(speech_video), 16_000, what="speech.mp4", timeout_s=30, memory_mb=64)


def test_espeak_is_found_or_its_absence_says_how_to_install_it():
    from tests.espeak import INSTALL_COMMAND, EspeakMissing, ensure_espeak

    assert Path(ensure_espeak()).name == "espeak-ng"
    with pytest.raises(EspeakMissing, match=INSTALL_COMMAND.replace("&&", ".*")):
        ensure_espeak("espeak-ng-that-does-not-exist")
    spoken = media_factory.speak("Hello there.")
    assert spoken.dtype == np.float32 and 0.3 < len(spoken) / 44_100 < 3 and np.abs(spoken).max() > 0.1
    assert np.array_equal(spoken, media_factory.speak("Hello there."))  # deterministic
