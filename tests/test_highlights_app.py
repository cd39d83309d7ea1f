"""The Highlights tab over HTTP: ``/highlights``, ``/highlights_rerender`` and
``/highlights_criteria`` driven with gradio_client on the app served in-process."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
from gradio_client import handle_file

from tests import media_factory
from tests.highlights_server import serve_highlights
from tests.media_factory import decode_frame_index

FPS = 10


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hl-app")
    return media_factory.make_video(folder / "match.mp4", seconds=40, fps=FPS, size=(160, 120), audio=True)


@pytest.fixture(scope="module")
def app_url(tiny_smolvlm, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:  # the app's own cache folder, restored after
        patch.setenv("VLMS_CACHE_DIR", str(tmp_path_factory.mktemp("hl-cache")))
        with serve_highlights(tiny_smolvlm) as (url, _demo):
            yield url


def _find(client, video, model, target=12, select_by="Target length", criteria="anything moving", snap="shots",
          windows="fixed", audio_weight=0.3, aspect="source", reframe="center"):
    return client.predict(handle_file(str(video)), str(model), criteria, 4, 0, 2, select_by, target, 0.5, 0, snap,
                          windows, audio_weight, aspect, reframe, api_name="/highlights")


def _reel(path) -> tuple[float, list[int]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert container.streams.audio, "the reel lost the audio"
        frames = [decode_frame_index(f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
        return float(stream.duration * stream.time_base), frames


def test_highlights_endpoint_returns_reel_timeline_table_and_downloads(client, video, tiny_smolvlm):
    summary, timeline, table, reel, files, preview, criteria = _find(client, video, tiny_smolvlm)
    assert "reel · segments:" in summary and "10 windows of 4 s" in summary and "2 frames each" in summary
    assert timeline.startswith("<svg") and 'class="selected"' in timeline and 'class="score"' in timeline
    rows = table["data"]
    assert rows and all(row[3] is True for row in rows)
    total = sum(row[1] - row[0] for row in rows)
    seconds, frames = _reel(reel)
    assert 8.0 <= total <= 12.0 and abs(seconds - total) <= 0.1
    assert frames == [i for row in rows for i in range(round(row[0] * FPS), round(row[1] * FPS))]
    assert sorted(Path(f).name for f in files) == ["highlights.edl", "highlights.json", "highlights.srt", "highlights.xspf"]
    assert criteria == "anything moving"
    assert preview == [] and "0 shot cuts" in summary and "reel source shape" in summary


def test_a_new_target_reuses_the_scores_and_an_edited_table_rerenders(client, video, tiny_smolvlm):
    _find(client, video, tiny_smolvlm, target=12)
    summary, *_ = _find(client, video, tiny_smolvlm, target=8)
    assert "from the cache (no model call)" in summary
    edited = {"headers": ["start (s)", "end (s)", "score", "keep", "on a shot cut"],
              "data": [[4.0, 8.0, 0.5, True, ""], [20.0, 24.0, 0.5, False, ""], [30.0, 31.5, None, True, ""]]}
    summary, timeline, table, reel, files, preview = client.predict(edited, "source", "center",
                                                                    api_name="/highlights_rerender")
    assert "5.5 s** reel · segments: 2 ·" in summary
    assert [row[:2] for row in table["data"]] == [[4.0, 8.0], [30.0, 31.5]]
    seconds, frames = _reel(reel)
    assert abs(seconds - 5.5) <= 0.1 and frames == [*range(40, 80), *range(300, 315)]


def test_edited_criteria_rescore_without_decoding_the_video_or_encoding_its_frames(client, video, tiny_smolvlm,
                                                                                  monkeypatch):
    from tests.test_frame_features import counting

    _find(client, video, tiny_smolvlm, criteria="anything moving")  # the frames' features are kept
    with counting(monkeypatch, tiny_smolvlm) as counts:
        summary, *_ = _find(client, video, tiny_smolvlm, criteria="a ball flying into the goal")
    assert "scored in" in summary  # new scores: the language model ran
    assert counts == {"decodes": 0, "vision": 0, "frames": 0}


def test_suggested_criteria_fill_the_box(client, video, tiny_smolvlm):
    criteria = client.predict(handle_file(str(video)), str(tiny_smolvlm), api_name="/highlights_criteria")
    assert isinstance(criteria, str) and criteria.strip()


def test_suggest_then_find_encode_each_frame_of_the_scan_once(client, tiny_smolvlm, tmp_path, monkeypatch):
    """Suggest with the tab's window settings shows the model frames the scan scores: across both
    requests every frame of the scan goes through the vision encoder once (16 + 4, not 16 + 20)."""
    from tests.test_frame_features import counting

    # Not the module's video (same settings would give the same content, whose features are kept).
    fresh = media_factory.make_video(tmp_path / "fresh.mp4", seconds=40, fps=FPS, size=(176, 128), audio=True)
    with counting(monkeypatch, tiny_smolvlm) as suggested:
        criteria = client.predict(handle_file(str(fresh)), str(tiny_smolvlm), "off", "auto", False, 4, 0, 2,
                                  api_name="/highlights_criteria")
    with counting(monkeypatch, tiny_smolvlm) as found:
        summary, *_ = _find(client, fresh, tiny_smolvlm, criteria=criteria)
    assert "10 windows of 4 s" in summary and "2 frames each" in summary
    assert suggested["frames"] == 16 and found["frames"] == 10 * 2 - 16


def test_bad_input_is_a_clear_error_and_the_next_request_works(client, video, tiny_smolvlm, tmp_path):
    broken = media_factory.make_random_bytes(tmp_path / "broken.mp4")
    with pytest.raises(Exception) as info:
        _find(client, broken, tiny_smolvlm)
    message = str(info.value)
    assert "Traceback" not in message and "video" in message.lower()
    with pytest.raises(Exception, match="Edit the table|Find highlights first|Row"):
        client.predict({"headers": ["start (s)", "end (s)", "score", "keep"], "data": [[9, 3, None, True]]},
                       "source", "center", api_name="/highlights_rerender")
    summary, *_ = _find(client, video, tiny_smolvlm)
    assert "reel · segments:" in summary


def test_shots_sound_and_a_vertical_follow_reel_through_the_endpoint(client, tmp_path, tiny_smolvlm):
    """The tab's new controls over HTTP: shot windows, snapping, the sound, a 9:16 follow reel, the
    crop preview, and a re-render of the edited table in another shape."""
    video = media_factory.make_shots_video(tmp_path / "cuts.mp4", seconds=24, cuts=(6.3, 13.7), fps=FPS)
    summary, timeline, table, reel, files, preview, _ = _find(client, video, tiny_smolvlm, target=10, windows="shots",
                                                               audio_weight=0.5, aspect="9:16", reframe="follow")
    assert "2 shot cuts" in summary and "1080x1920 (9:16, follow)" in summary and "shot windows" in summary
    assert timeline.count('class="cut"') == 2 and 'class="audio"' in timeline and 'class="visual"' in timeline
    assert all(row[4] in ("", "start", "end", "start, end") for row in table["data"])
    with av.open(str(reel)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (1080, 1920) and container.streams.audio
    assert len(preview) == 4
    rows = {"headers": table["headers"], "data": table["data"]}
    *_, reel, _files, preview = client.predict(rows, "1:1", "center", api_name="/highlights_rerender")
    with av.open(str(reel)) as container:
        assert (container.streams.video[0].width, container.streams.video[0].height) == (1080, 1080)
