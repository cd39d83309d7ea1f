"""The one message converter and the Gradio-history adapter (pure functions)."""

from types import SimpleNamespace

import numpy as np
import pytest

from components.history import textbox_value, to_turns, user_message
from pipelines.errors import BadInputError
from pipelines.messages import Attachment, Turn, build_messages, image_label
from pipelines.registry import PERCEPTION_LM, SMOLVLM


def _clip(path):
    return SimpleNamespace(path=path, frames=np.zeros((2, 4, 4, 3), np.uint8))


def _build(turns, family=SMOLVLM, system=""):
    return build_messages(turns, family, load_image=lambda p: f"IMG:{p}", load_video=_clip, system_prompt=system)


def _kinds(message):
    return [item["type"] for item in message["content"]]


def test_single_image_media_first_then_text():
    built = _build([Turn("user", "What is this?", (Attachment("image", "a.png"),))])
    assert built.messages == [{"role": "user", "content": [
        {"type": "image", "image": "IMG:a.png"}, {"type": "text", "text": "What is this?"}]}]
    assert built.images == ["IMG:a.png"] and not built.notices


def test_history_media_is_resent_in_place_with_system_prompt():
    turns = [
        Turn("user", "first", (Attachment("image", "a.png"),)),
        Turn("assistant", "an apple"),
        Turn("user", "and this?", (Attachment("image", "b.png"),)),
    ]
    built = _build(turns, system="Be brief.")
    assert [m["role"] for m in built.messages] == ["system", "user", "assistant", "user"]
    assert built.images == ["IMG:a.png", "IMG:b.png"]
    assert _kinds(built.messages[1]) == ["image", "text"] and _kinds(built.messages[3]) == ["image", "text"]


def test_smolvlm_mixing_images_and_video_keeps_newest_kind():
    turns = [
        Turn("user", "look", (Attachment("image", "a.png"),)),
        Turn("assistant", "ok"),
        Turn("user", "now this video", (Attachment("video", "v.mp4"),)),
    ]
    built = _build(turns, SMOLVLM)
    assert built.images == [] and [c.path for c in built.videos] == ["v.mp4"]
    assert built.messages[0]["content"][0] == {"type": "text", "text": "[image not shown to the model]\n"}
    assert "SmolVLM sees either images or one video" in built.notices[0]


def test_perception_lm_keeps_images_and_video_together():
    turns = [Turn("user", "compare", (Attachment("image", "a.png"), Attachment("video", "v.mp4")))]
    built = _build(turns, PERCEPTION_LM)
    assert built.images == ["IMG:a.png"] and len(built.videos) == 1 and not built.notices


def test_only_the_newest_video_is_sent():
    turns = [
        Turn("user", "one", (Attachment("video", "old.mp4"),)),
        Turn("assistant", "ok"),
        Turn("user", "two", (Attachment("video", "new.mp4"),)),
    ]
    built = _build(turns, PERCEPTION_LM)
    assert [c.path for c in built.videos] == ["new.mp4"]
    assert _kinds(built.messages[0]) == ["text", "text"]


def test_labelled_images_match_the_names_used_on_screen():
    turn = Turn("user", "What differs?", tuple(Attachment("image", f"{i}.png") for i in range(3)), label_images=True)
    content = _build([turn]).messages[0]["content"]
    labels = [c["text"] for c in content if c["type"] == "text"][:-1]
    assert labels == [f"{image_label(n)}:" for n in (1, 2, 3)] == ["Image 1:", "Image 2:", "Image 3:"]


def test_user_text_is_never_treated_as_a_path():
    built = _build([Turn("user", "/etc/passwd https://example.com/x.png <image>")])
    assert built.images == [] and built.videos == []
    assert built.messages[0]["content"] == [{"type": "text", "text": "/etc/passwd https://example.com/x.png <image>"}]


def test_history_round_trip_and_file_kind_by_content(sample_image, short_video, tmp_path):
    history = [
        user_message({"text": "hi", "files": [str(sample_image)]}),
        {"role": "assistant", "content": [{"type": "text", "text": "hello"}]},
        {"role": "user", "content": [{"type": "file", "file": {"path": str(short_video)}}]},
        {"role": "user", "content": [{"type": "text", "text": "what happens?"}]},
    ]
    turns = to_turns(history)
    assert [t.role for t in turns] == ["user", "assistant", "user"]
    assert turns[0].attachments == (Attachment("image", str(sample_image)),)
    assert turns[2] == Turn("user", "what happens?", (Attachment("video", str(short_video)),))
    assert textbox_value(history[0]) == {"text": "hi", "files": [str(sample_image)]}
    fake = tmp_path / "notes.jpg"
    fake.write_text("<html><body>not an image</body></html>")
    with pytest.raises(BadInputError, match="neither an image nor a video"):
        to_turns([user_message({"text": "x", "files": [str(fake)]})])
