"""Checks for tests/tiny_models.py: offline tiny checkpoints and full-size parameter counts."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from tests.tiny_models import build_tiny_perception_lm, build_tiny_smolvlm2  # noqa: E402

TINY_MODELS = Path(__file__).with_name("tiny_models.py")


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("tiny_models")
    return {
        "smolvlm2": build_tiny_smolvlm2(base / "smolvlm2"),
        "perception_lm": build_tiny_perception_lm(base / "perception_lm"),
    }


@pytest.fixture(scope="module")
def loaded(tiny_dirs):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    return {
        family: (AutoProcessor.from_pretrained(path), AutoModelForImageTextToText.from_pretrained(path).eval())
        for family, path in tiny_dirs.items()
    }


def _image(h, w, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8))


def _video_inputs(processor, n_frames=8):
    frames = np.random.default_rng(1).integers(0, 255, (n_frames, 48, 80, 3), dtype=np.uint8)
    messages = [{"role": "user", "content": [{"type": "video", "video": frames}, {"type": "text", "text": "Summarize."}]}]
    meta = {"fps": 2.0, "total_num_frames": n_frames, "duration": n_frames / 2.0, "frames_indices": list(range(n_frames))}
    return processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
        processor_kwargs={"video_metadata": meta, "do_sample_frames": False},
    )


def _image_inputs(processor, *images):
    content = [{"type": "image", "image": im} for im in images] + [{"type": "text", "text": "What is in this image?"}]
    return processor.apply_chat_template(
        [{"role": "user", "content": content}],
        add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
    )


def test_small_safetensors_only(tiny_dirs):
    for path in tiny_dirs.values():
        files = {p.name for p in path.iterdir()}
        assert "model.safetensors" in files and not any(f.endswith((".bin", ".pt")) for f in files)
        total = sum(p.stat().st_size for p in path.iterdir())
        assert 0.3e6 < total < 5e6, total


@pytest.mark.parametrize("family,model_type", [("smolvlm2", "smolvlm"), ("perception_lm", "perception_lm")])
def test_reload_and_token_ids(loaded, tiny_dirs, family, model_type):
    processor, model = loaded[family]
    assert json.loads((tiny_dirs[family] / "config.json").read_text())["model_type"] == model_type
    assert model.config.model_type == model_type
    tok = processor.tokenizer
    assert model.config.image_token_id == tok.convert_tokens_to_ids(tok.image_token) == processor.image_token_id
    if family == "perception_lm":
        assert model.config.video_token_id == tok.convert_tokens_to_ids(tok.video_token) == processor.video_token_id
        assert model.config.image_token_id != model.config.video_token_id
    assert 500 < len(tok) <= model.config.text_config.vocab_size


def test_smolvlm_image_token_count(loaded):
    processor, model = loaded["smolvlm2"]
    v = model.config.vision_config
    per_tile = (v.image_size // v.patch_size) ** 2 // model.config.scale_factor**2
    assert per_tile == processor.image_seq_len == 4
    # Square image: long edge resized to 4 x 64, split into 4 x 4 tiles, plus the global image.
    inputs = _image_inputs(processor, _image(40, 40))
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == 17 * per_tile
    assert tuple(inputs["pixel_values"].shape) == (1, 17, 3, 64, 64)
    # Without splitting: one tile.
    inputs = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image", "image": _image(40, 40)}, {"type": "text", "text": "Hi"}]}],
        add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
        processor_kwargs={"do_image_splitting": False},
    )
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == per_tile


def test_perception_lm_image_token_count(loaded):
    processor, model = loaded["perception_lm"]
    args = model.config.vision_config.model_args
    per_tile = (args["img_size"][0] // processor.patch_size // model.config.projector_pooling_ratio) ** 2
    assert per_tile == 4
    inputs = _image_inputs(processor, _image(120, 90))  # 4 tiles + thumbnail
    assert tuple(inputs["pixel_values"].shape) == (1, 5, 3, 64, 64)
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == 5 * per_tile
    assert int((inputs["input_ids"] == processor.tokenizer.bos_token_id).sum()) == 1


def test_chat_templates(loaded):
    from transformers.models.smolvlm.processing_smolvlm import DEFAULT_CHAT_TEMPLATE

    smol, _ = loaded["smolvlm2"]
    conv = [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]},
        {"role": "user", "content": [{"type": "text", "text": "And"}, {"type": "image"}]},
    ]
    text = smol.apply_chat_template(conv, add_generation_prompt=True)
    assert text == (
        "<|im_start|>System: Be brief.<end_of_utterance>\nUser:<image>What?<end_of_utterance>\n"
        "Assistant: A cat.<end_of_utterance>\nUser: And<image><end_of_utterance>\nAssistant:"
    )
    assert text == smol.apply_chat_template(conv, add_generation_prompt=True, chat_template=DEFAULT_CHAT_TEMPLATE)

    plm, _ = loaded["perception_lm"]
    conv = [{"role": "user", "content": [{"type": "text", "text": " Describe. "}, {"type": "image"}]}]
    assert plm.apply_chat_template(conv, add_generation_prompt=True) == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful language and vision "
        "assistant. You are able to understand the visual content that the user provides, and assist the user "
        "with a variety of tasks using natural language.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
        "<|image|>Describe.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )


@pytest.mark.parametrize("family", ["smolvlm2", "perception_lm"])
def test_generate_image_images_video(loaded, family):
    processor, model = loaded[family]
    cases = [
        _image_inputs(processor, _image(120, 90)),
        _image_inputs(processor, _image(120, 90), _image(64, 64, seed=2)),
        _video_inputs(processor),
    ]
    for inputs in cases:
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=5, min_new_tokens=5, do_sample=False)
        assert out.shape == (1, inputs["input_ids"].shape[1] + 5)
    video = cases[-1]
    if family == "smolvlm2":
        text = processor.decode(video["input_ids"][0])
        assert "You are provided the following series of eight frames from a 0:00:04 [H:MM:SS] video." in text
        assert int((video["input_ids"] == model.config.image_token_id).sum()) == 8 * processor.image_seq_len
    else:
        assert int((video["input_ids"] == model.config.video_token_id).sum()) == 8 * 4


def test_deterministic(tmp_path, tiny_dirs):
    again = build_tiny_smolvlm2(tmp_path / "again")
    digest = lambda p: hashlib.sha256((p / "model.safetensors").read_bytes()).hexdigest()  # noqa: E731
    assert digest(again) == digest(tiny_dirs["smolvlm2"])


@pytest.mark.slow  # builds the full-size stand-ins' configs in a subprocess (~10 s)
def test_count_only_cli():
    proc = subprocess.run(
        [sys.executable, str(TINY_MODELS), "--size", "256m,2.2b,plm-1b", "--count-only"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    counts = {d["size"]: d["params"] for d in map(json.loads, proc.stdout.strip().splitlines())}
    assert counts == {"256m": 256_484_928, "2.2b": 2_246_784_880, "plm-1b": 1_533_524_992}
