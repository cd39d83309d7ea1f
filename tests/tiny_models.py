"""Offline random checkpoints for SmolVLM2 and PerceptionLM (tests and benchmarks).

Nothing here touches the network: the tokenizer is a byte-level BPE trained on
text generated in this file, and every weight is random (``torch.manual_seed``),
so a build is deterministic.

Contract
--------
Every builder writes a directory that reloads offline with::

    AutoProcessor.from_pretrained(DIR)
    AutoModelForImageTextToText.from_pretrained(DIR)

The directory holds ``config.json`` (``model_type`` "smolvlm" or "perception_lm"),
``generation_config.json``, safetensors weights, the tokenizer, the image/video
processor configs and ``chat_template.jinja``. Read token ids from the model
config (``config.image_token_id``; PerceptionLM also ``config.video_token_id``),
never hard-code them: they are small ids of the tiny tokenizer.

Builders
--------
``build_tiny_smolvlm2(out_dir)``
    ~1 MB SmolVLM2: Llama text (hidden 64, 2 layers), SigLIP-style vision
    (hidden 32, 2 layers, 64 px tiles, patch 16, scale_factor 2 -> 4 image tokens
    per tile). The image processor resizes the long edge to 4 x 64 and splits it
    into 64 px tiles exactly like the real one does at 4 x 512 (so a square image
    gives 16 tiles + 1 global = 68 image tokens). Video: 1 fps, at most 64
    frames, each frame one tile.
``build_tiny_perception_lm(out_dir)``
    ~1 MB PerceptionLM: timm ``vit_pe_core_tiny_patch16_384`` tower shrunk to
    embed 32 / depth 2 at 64 px, tiny Llama text, projector pooling 2 -> 4 tokens
    per tile or frame; image tiles "thumb+tile", at most 4 tiles.
``build_full_size(size, out_dir, dtype=None, device="cpu")``
    Random weights with the real architecture and shapes, for speed and memory
    figures (not for answers). ``size`` is one of ``256m``, ``500m``, ``2.2b``,
    ``plm-1b``; dtype defaults to bf16 for 2.2b / plm-1b and fp32 otherwise. The
    processors carry the real settings; the tokenizer stays the tiny one and the
    model's vocabulary is padded to the real size (ids above the tokenizer's
    size decode to nothing).
``count_full_size(size)``
    Parameter count of a full-size stand-in, built on the meta device (no memory,
    no weights).
``build(family_or_size, out_dir)``
    Dispatch on "smolvlm2", "perception_lm" or one of the sizes above.
``build_tiny_whisper(out_dir)``
    ~1 MB Whisper (``WhisperForConditionalGeneration``: d_model 64, 2 + 2 layers, 80 mel bins,
    the real 1500 encoder positions so 30 s windows fit) with a tiny offline tokenizer that has
    Whisper's special tokens (``<|startoftranscript|>``, two languages, tasks, ``<|nocaptions|>``,
    ``<|notimestamps|>``) followed by the 1501 timestamp tokens ``<|0.00|>``..``<|30.00|>``, a
    ``WhisperFeatureExtractor`` / ``WhisperProcessor``, and a generation config with everything
    transformers' speech-recognition pipeline reads for timestamps (``no_timestamps_token_id``,
    ``lang_to_id``, ``task_to_id``, ``alignment_heads`` for word timestamps). Reloads offline with
    ``AutoProcessor`` + ``AutoModelForSpeechSeq2Seq``. ``word_timestamps=False`` leaves
    ``alignment_heads`` out (a checkpoint with segment timestamps only).
``build_full_size_whisper(size, out_dir)``
    Random stand-in for ``tiny`` or ``base`` with the real shapes (vocab 51865, 80 mel bins;
    parameter count checked against ``WHISPER_PARAMS``); the tokenizer stays the tiny one.

CLI::

    python tests/tiny_models.py --family smolvlm2|perception_lm|whisper --out DIR
    python tests/tiny_models.py --size 256m|500m|2.2b|plm-1b --out DIR [--dtype bf16|fp32] [--device cpu|cuda]
    python tests/tiny_models.py --size 256m,2.2b,plm-1b --count-only   # meta device, one JSON line each

Chat templates are equivalent to the real checkpoints':

* SmolVLM2: ``<|im_start|>`` then per message ``Role:`` (``Role: `` unless the
  content starts with an image), text / ``<image>`` / ``<video>`` items in order,
  ``<end_of_utterance>\\n``; the generation prompt is ``Assistant:``. The
  SmolVLM processor expands ``<video>`` itself (frame count, duration and a
  ``Frame from MM:SS:`` line per frame), and it swaps in its built-in template
  whenever a message holds a video.
* PerceptionLM: Llama-3 style. ``<|begin_of_text|>``, a system turn (default
  system prompt unless the first message is a system message), then per message
  ``<|start_header_id|>role<|end_header_id|>\\n\\n`` + all ``<|image|>`` items +
  all ``<|video|>`` items + the trimmed texts + ``<|eot_id|>``; the generation
  prompt is the assistant header. Images come first, then videos, then text,
  whatever the order of the items (as in the real template).

Processor notes (transformers 5.23)
-----------------------------------
* Video frames as a numpy (T, H, W, 3) uint8 array go in
  ``processor_kwargs={"video_metadata": {"fps", "total_num_frames", "duration",
  "frames_indices"}, "do_sample_frames": False}``. SmolVLM needs ``fps`` and
  ``frames_indices`` (timestamps = index / fps) and ``return_tensors="pt"``;
  without ``do_sample_frames=False`` it resamples at 1 fps (max 64 frames).
* PerceptionLM has no frame default: pass ``num_frames=32`` (with
  ``do_sample_frames=True``) to sample, otherwise every frame given is used.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

__all__ = [
    "FULL_SIZES",
    "EXPECTED_PARAMS",
    "SMOLVLM_CHAT_TEMPLATE",
    "PERCEPTION_LM_CHAT_TEMPLATE",
    "build",
    "build_full_size",
    "build_tiny_perception_lm",
    "build_tiny_smolvlm2",
    "build_tiny_whisper",
    "build_full_size_whisper",
    "count_full_size",
    "WHISPER_PARAMS",
]

SEED = 0
TOKENIZER_VOCAB = 1024

# Published parameter counts the stand-ins must reproduce (500m: computed from
# the architecture of its config (hidden 960, 32 layers, 15 heads, 5 kv, inter 2560), not
# checked against a published figure).
EXPECTED_PARAMS = {
    "256m": 256_484_928,
    "500m": 507_482_304,
    "2.2b": 2_246_784_880,
    "plm-1b": 1_533_524_992,
}
FULL_SIZES = tuple(EXPECTED_PARAMS)

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful language and vision assistant. You are able to understand the visual content "
    "that the user provides, and assist the user with a variety of tasks using natural language."
)

# --------------------------------------------------------------------------------------
# Chat templates (rendered by transformers with trim_blocks / lstrip_blocks).
# --------------------------------------------------------------------------------------

SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>"
    "{%- for message in messages -%}"
    "{{- message['role'] | capitalize -}}"
    "{%- if message['content'] is string -%}"
    "{{- ': ' + message['content'] -}}"
    "{%- else -%}"
    "{%- if message['content'] and message['content'][0]['type'] == 'image' -%}{{- ':' -}}"
    "{%- else -%}{{- ': ' -}}{%- endif -%}"
    "{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'text' -%}{{- item['text'] -}}"
    "{%- elif item['type'] == 'image' -%}{{- '<image>' -}}"
    "{%- elif item['type'] == 'video' -%}{{- '<video>' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<end_of_utterance>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'Assistant:' -}}{%- endif -%}"
)

PERCEPTION_LM_CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- set ns = namespace(system='" + DEFAULT_SYSTEM_PROMPT + "', start=0) -%}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set ns.start = 1 -%}"
    "{%- if messages[0]['content'] is string -%}"
    "{%- set ns.system = messages[0]['content'] | trim -%}"
    "{%- else -%}"
    "{%- set ns.system = messages[0]['content'] | selectattr('type', 'equalto', 'text')"
    " | map(attribute='text') | join('') | trim -%}"
    "{%- endif -%}"
    "{%- endif -%}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' + ns.system + '<|eot_id|>' -}}"
    "{%- for message in messages[ns.start:] -%}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' -}}"
    "{%- if message['content'] is string -%}"
    "{{- message['content'] | trim -}}"
    "{%- else -%}"
    "{%- for item in message['content'] if item['type'] == 'image' -%}{{- '<|image|>' -}}{%- endfor -%}"
    "{%- for item in message['content'] if item['type'] == 'video' -%}{{- '<|video|>' -}}{%- endfor -%}"
    "{%- for item in message['content'] if item['type'] == 'text' -%}{{- item['text'] | trim -}}{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|eot_id|>' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}{%- endif -%}"
)

# --------------------------------------------------------------------------------------
# Tokenizers
# --------------------------------------------------------------------------------------

_SUBJECTS = (
    "the cat", "a dog", "my friend", "the old man", "a young woman", "the teacher", "two children",
    "the robot", "a small bird", "the driver", "our team", "the farmer", "a tall tree", "the city",
    "the camera", "a red car", "the horse", "this person", "the player", "a brown bear", "the chef",
    "the river", "a white boat", "the student", "the doctor", "a green frog", "the musician",
)
_VERBS = (
    "sees", "holds", "walks past", "looks at", "stands near", "jumps over", "carries", "paints",
    "follows", "opens", "closes", "watches", "reads", "builds", "throws", "catches", "cooks",
    "drives", "climbs", "cleans", "points at", "talks to", "plays with", "sits beside", "moves",
)
_ADJECTIVES = (
    "big", "small", "red", "blue", "green", "yellow", "bright", "dark", "quiet", "loud", "happy",
    "sad", "wooden", "metal", "round", "square", "empty", "full", "heavy", "light", "warm", "cold",
    "beautiful", "strange", "famous", "simple", "colorful", "narrow", "wide", "sunny", "cloudy",
)
_OBJECTS = (
    "ball", "table", "window", "door", "book", "picture", "image", "video", "frame", "mountain",
    "bridge", "house", "garden", "street", "kitchen", "computer", "phone", "bottle", "flower",
    "chair", "bicycle", "building", "forest", "beach", "road", "sign", "screen", "chart", "graph",
    "document", "letter", "number", "animal", "person", "face", "hand", "shirt", "hat", "lamp",
)
_PLACES = (
    "in the park", "on the street", "at home", "near the lake", "under the bridge", "in the morning",
    "at night", "during the game", "inside the room", "behind the house", "on the left",
    "on the right", "in the background", "in the foreground", "at the top", "at the bottom",
)
_QUESTIONS = (
    "What is in this image?", "Describe the picture in detail.", "What happens in the video?",
    "How many people are there?", "What color is the car?", "Can you read the text?",
    "Summarize the video.", "Where was this photo taken?", "What is the person doing?",
    "Is there an animal in the frame?", "Compare the two images.", "What time of day is it?",
)
_FIXED = (
    "User: Assistant: System:",
    "You are provided the following series of frames from a video.",
    "Frame from 00:01: Frame from 00:02: Frame from 01:30:",
    DEFAULT_SYSTEM_PROMPT,
    "one two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty sixty",
    "0 1 2 3 4 5 6 7 8 9 10 16 32 64 100 2024 3.14 [H:MM:SS] 0:00:08",
)


def _training_text() -> list[str]:
    """A few thousand deterministic English-ish sentences (no files needed)."""
    rng = random.Random(SEED)
    lines = list(_FIXED)
    for i in range(1500):
        s = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} the {rng.choice(_ADJECTIVES)} {rng.choice(_OBJECTS)}"
        if rng.random() < 0.6:
            s += f" {rng.choice(_PLACES)}"
        s = s[0].upper() + s[1:] + rng.choice((".", ".", "!", "?"))
        if i % 5 == 0:
            s = rng.choice(_QUESTIONS) + " " + s
        if i % 7 == 0:
            s += f" There are {rng.randint(0, 99)} of them, {rng.choice(_ADJECTIVES)} and {rng.choice(_ADJECTIVES)}."
        lines.append(s)
    return lines


def _train_bpe(special_tokens: list[str], post_bos: str | None = None):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_training_text(), trainer)
    # Register them as added tokens too, so they are matched whole in any text.
    tok.add_special_tokens(special_tokens)
    if post_bos is not None:
        bos_id = tok.token_to_id(post_bos)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{post_bos} $A", pair=f"{post_bos} $A {post_bos} $B", special_tokens=[(post_bos, bos_id)]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


SMOLVLM_ROW_COL_TOKENS = [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]


def make_smolvlm_tokenizer():
    """Tiny tokenizer with SmolVLM2's special tokens and tokenizer attributes."""
    from transformers import PreTrainedTokenizerFast

    # Same order as the real vocabulary's first ids: <|endoftext|>=0, <|im_start|>=1, <|im_end|>=2.
    specials = [
        "<|endoftext|>", "<|im_start|>", "<|im_end|>",
        "<fake_token_around_image>", "<image>", "<global-img>", "<video>", "<end_of_utterance>",
        *SMOLVLM_ROW_COL_TOKENS,
    ]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_train_bpe(specials),
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        extra_special_tokens={
            "image_token": "<image>",
            "fake_image_token": "<fake_token_around_image>",
            "global_image_token": "<global-img>",
            "end_of_utterance_token": "<end_of_utterance>",
            "video_token": "<video>",
        },
        model_max_length=8192,
        padding_side="left",
    )
    tokenizer.chat_template = SMOLVLM_CHAT_TEMPLATE
    return tokenizer


def make_perception_lm_tokenizer():
    """Tiny Llama-3 style tokenizer with PerceptionLM's <|image|> / <|video|> tokens."""
    from transformers import PreTrainedTokenizerFast

    specials = [
        "<|begin_of_text|>", "<|end_of_text|>", "<|image|>", "<|video|>",
        "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>", "<|python_tag|>",
    ]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_train_bpe(specials, post_bos="<|begin_of_text|>"),
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<|end_of_text|>",
        extra_special_tokens={"image_token": "<|image|>", "video_token": "<|video|>"},
        model_max_length=11520,
        padding_side="left",
    )
    tokenizer.chat_template = PERCEPTION_LM_CHAT_TEMPLATE
    return tokenizer


# --------------------------------------------------------------------------------------
# SmolVLM2
# --------------------------------------------------------------------------------------

_SMOLVLM_SPECS = {
    # name: text decoder, vision tower, pixel-shuffle scale_factor, default dtype
    "smolvlm2-tiny": dict(
        text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=None, rope_theta=100000.0),
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                    image_size=64, patch_size=16),
        scale_factor=2,
        dtype=torch.float32,
    ),
    "256m": dict(
        text=dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                  num_key_value_heads=3, vocab_size=49280, rope_theta=100000.0),
        vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                    image_size=512, patch_size=16),
        scale_factor=4,
        dtype=torch.float32,
    ),
    "500m": dict(
        text=dict(hidden_size=960, intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15,
                  num_key_value_heads=5, vocab_size=49280, rope_theta=100000.0),
        vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                    image_size=512, patch_size=16),
        scale_factor=4,
        dtype=torch.float32,
    ),
    "2.2b": dict(
        text=dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=32,
                  num_key_value_heads=32, vocab_size=49280, rope_theta=130000.0),
        vision=dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                    image_size=384, patch_size=14),
        scale_factor=3,
        dtype=torch.bfloat16,
    ),
}
# The tiny one with head_dim 32 (2 heads, 1 KV head): vLLM's CPU attention has no head_dim 16
# kernel (NOTES.md "vLLM on CPU"); the engine tests serve this one.
_SMOLVLM_SPECS["smolvlm2-tiny-vllm"] = {
    **_SMOLVLM_SPECS["smolvlm2-tiny"],
    "text": {**_SMOLVLM_SPECS["smolvlm2-tiny"]["text"], "num_attention_heads": 2, "num_key_value_heads": 1},
}


def _smolvlm_config(spec: dict, tokenizer):
    from transformers import SmolVLMConfig

    text = dict(spec["text"])
    rope_theta = text.pop("rope_theta")
    vocab = text.pop("vocab_size") or len(tokenizer)
    vocab = max(vocab, len(tokenizer))
    pad_id = tokenizer.pad_token_id
    text_config = dict(
        model_type="llama",
        vocab_size=vocab,
        max_position_embeddings=8192,
        rms_norm_eps=1e-5,
        hidden_act="silu",
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.pad_token_id,  # <|im_end|>, as in the real config
        pad_token_id=pad_id,
        **text,
    )
    vision_config = dict(model_type="smolvlm_vision", hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6, **spec["vision"])
    return SmolVLMConfig(
        text_config=text_config,
        vision_config=vision_config,
        scale_factor=spec["scale_factor"],
        image_token_id=tokenizer.convert_tokens_to_ids(tokenizer.image_token),
        tie_word_embeddings=False,
        pad_token_id=pad_id,
    )


def _smolvlm_image_seq_len(spec: dict) -> int:
    v = spec["vision"]
    return int((v["image_size"] // v["patch_size"]) ** 2 / (spec["scale_factor"] ** 2))


def _smolvlm_processor(spec: dict, tokenizer):
    from transformers import SmolVLMImageProcessor, SmolVLMProcessor, SmolVLMVideoProcessor
    from transformers.image_utils import PILImageResampling

    tile = spec["vision"]["image_size"]
    common = dict(
        do_convert_rgb=True,
        do_resize=True,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        do_pad=True,
        resample=PILImageResampling.LANCZOS,
        max_image_size={"longest_edge": tile},
    )
    image_processor = SmolVLMImageProcessor(
        size={"longest_edge": 4 * tile}, do_image_splitting=True, **common
    )
    video_processor = SmolVLMVideoProcessor(
        size={"longest_edge": tile},
        video_sampling={"fps": 1, "max_frames": 64, "video_size": {"longest_edge": tile}},
        fps=1,
        num_frames=64,
        do_sample_frames=False,
        **common,
    )
    return SmolVLMProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        image_seq_len=_smolvlm_image_seq_len(spec),
        chat_template=SMOLVLM_CHAT_TEMPLATE,
    )


def _smolvlm_generation_config(tokenizer):
    from transformers import GenerationConfig

    eou = tokenizer.convert_tokens_to_ids("<end_of_utterance>")
    return GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.pad_token_id, eou],
        pad_token_id=tokenizer.pad_token_id,
    )


# --------------------------------------------------------------------------------------
# PerceptionLM
# --------------------------------------------------------------------------------------

_PLM_SPECS = {
    "plm-tiny": dict(
        text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=None),
        rope={"rope_type": "default", "rope_theta": 500000.0},
        architecture="vit_pe_core_tiny_patch16_384",
        vision=dict(embed_dim=32, depth=2, num_heads=2, img_size=[64, 64], ref_feat_shape=[4, 4],
                    global_pool="", use_post_transformer_norm=False, init_values=0.1),
        patch_size=16,
        tile=64,
        max_num_tiles=4,
        dtype=torch.float32,
        # Untied: with tied embeddings a 2-layer random model mostly echoes its last input token
        # (the prompt ends in "\n\n", so it would answer only newlines). Untying costs nothing.
        tie_embeddings=False,
    ),
    "plm-1b": dict(
        # Llama-3.2-1B shapes.
        text=dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                  num_key_value_heads=8, vocab_size=128256),
        rope={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "high_freq_factor": 4.0,
              "low_freq_factor": 1.0, "original_max_position_embeddings": 8192},
        # PE-Core-L/14 at 448 px, last block dropped (23 of 24), layer scale, no head.
        architecture="vit_pe_core_large_patch14_336",
        vision=dict(embed_dim=1024, depth=23, img_size=[448, 448], ref_feat_shape=[32, 32],
                    global_pool="", use_post_transformer_norm=False, init_values=0.1),
        patch_size=14,
        tile=448,
        max_num_tiles=36,
        dtype=torch.bfloat16,
        tie_embeddings=True,  # as published; the parameter count depends on it
    ),
}


def _plm_config(spec: dict, tokenizer):
    from transformers import PerceptionLMConfig

    text = dict(spec["text"])
    vocab = max(text.pop("vocab_size") or len(tokenizer), len(tokenizer))
    text_config = dict(
        model_type="llama",
        vocab_size=vocab,
        max_position_embeddings=11520,
        rms_norm_eps=1e-5,
        hidden_act="silu",
        head_dim=text["hidden_size"] // text["num_attention_heads"],
        rope_parameters=dict(spec["rope"]),
        tie_word_embeddings=spec["tie_embeddings"],
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **text,
    )
    vision_config = dict(
        model_type="timm_wrapper",
        architecture=spec["architecture"],
        do_pooling=False,
        num_classes=0,
        model_args=dict(spec["vision"]),
    )
    return PerceptionLMConfig(
        text_config=text_config,
        vision_config=vision_config,
        vision_use_cls_token=True,
        projector_pooling_ratio=2,
        image_token_id=tokenizer.image_token_id,
        video_token_id=tokenizer.video_token_id,
        tie_word_embeddings=spec["tie_embeddings"],
    )


def _plm_processor(spec: dict, tokenizer):
    from transformers import PerceptionLMImageProcessor, PerceptionLMProcessor, PerceptionLMVideoProcessor

    tile = spec["tile"]
    image_processor = PerceptionLMImageProcessor(
        tile_size=tile, max_num_tiles=spec["max_num_tiles"], vision_input_type="thumb+tile",
        size={"height": tile, "width": tile},
    )
    video_processor = PerceptionLMVideoProcessor(size={"height": tile, "width": tile})
    return PerceptionLMProcessor(
        image_processor=image_processor,
        video_processor=video_processor,
        tokenizer=tokenizer,
        patch_size=spec["patch_size"],
        pooling_ratio=2,
        chat_template=PERCEPTION_LM_CHAT_TEMPLATE,
    )


def _plm_generation_config(tokenizer):
    from transformers import GenerationConfig

    return GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.convert_tokens_to_ids("<|eot_id|>"), tokenizer.convert_tokens_to_ids("<|end_of_text|>")],
        pad_token_id=tokenizer.pad_token_id,
    )


# --------------------------------------------------------------------------------------
# Building and saving
# --------------------------------------------------------------------------------------


def _count(model) -> int:
    # parameters() de-duplicates tied weights, which is how published counts are made.
    return sum(p.numel() for p in model.parameters())


def _instantiate(config, dtype: torch.dtype, device: str):
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(SEED)
    with torch.device(device):
        model = AutoModelForImageTextToText.from_config(config, dtype=dtype)
    return model.eval()


def _save(model, processor, generation_config, out_dir) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config = generation_config
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def _family_parts(size: str):
    """(config, processor, generation config, default dtype) for a spec name."""
    if size in _PLM_SPECS:
        spec = _PLM_SPECS[size]
        tok = make_perception_lm_tokenizer()
        return _plm_config(spec, tok), _plm_processor(spec, tok), _plm_generation_config(tok), spec["dtype"]
    spec = _SMOLVLM_SPECS[size]
    tok = make_smolvlm_tokenizer()
    return _smolvlm_config(spec, tok), _smolvlm_processor(spec, tok), _smolvlm_generation_config(tok), spec["dtype"]


def build_tiny_smolvlm2(out_dir) -> Path:
    """Build the ~1 MB random SmolVLM2 checkpoint into ``out_dir`` and return its path."""
    config, processor, gen, dtype = _family_parts("smolvlm2-tiny")
    return _save(_instantiate(config, dtype, "cpu"), processor, gen, out_dir)


def build_tiny_smolvlm2_vllm(out_dir) -> Path:
    """The tiny SmolVLM2 with head_dim 32, which vLLM's CPU attention can serve."""
    config, processor, gen, dtype = _family_parts("smolvlm2-tiny-vllm")
    return _save(_instantiate(config, dtype, "cpu"), processor, gen, out_dir)


def build_tiny_perception_lm(out_dir) -> Path:
    """Build the ~1 MB random PerceptionLM checkpoint into ``out_dir`` and return its path."""
    config, processor, gen, dtype = _family_parts("plm-tiny")
    return _save(_instantiate(config, dtype, "cpu"), processor, gen, out_dir)


def never_ending(checkpoint, out_dir) -> Path:
    """A view of ``checkpoint`` that never ends an answer on its own and never "says" only tokens
    that decode to nothing: its generation config suppresses every special and added token (EOS
    included) and every id past the tokenizer (the stand-ins pair the real vocabulary size with a
    small tokenizer). Every answer then runs to ``max_new_tokens``, which tests of Stop and the
    speed benchmarks need: a random model may otherwise end by chance after a dozen tokens (the
    tiny PerceptionLM does on "Tell a long story."). The weights are linked, not copied."""
    from transformers import AutoTokenizer

    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for item in checkpoint.iterdir():
        target = out_dir / item.name
        if not target.exists() and item.name != "generation_config.json":
            target.symlink_to(item.resolve())
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    vocab_size = json.loads((checkpoint / "config.json").read_text())["text_config"]["vocab_size"]
    silent = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder) | set(range(len(tokenizer), vocab_size))
    config = json.loads((checkpoint / "generation_config.json").read_text())
    config["suppress_tokens"] = sorted(silent)
    (out_dir / "generation_config.json").write_text(json.dumps(config, indent=2))
    return out_dir


def _normalize_size(size: str) -> str:
    s = size.lower().replace("_", "-")
    aliases = {"plm1b": "plm-1b", "perception-lm-1b": "plm-1b", "2b": "2.2b", "2.2": "2.2b"}
    s = aliases.get(s, s)
    if s not in EXPECTED_PARAMS:
        raise ValueError(f"unknown size {size!r}; choose one of {', '.join(FULL_SIZES)}")
    return s


_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp32": torch.float32, "float32": torch.float32,
           "fp16": torch.float16, "float16": torch.float16}


def _resolve_dtype(dtype, default: torch.dtype) -> torch.dtype:
    if dtype is None:
        return default
    if isinstance(dtype, torch.dtype):
        return dtype
    return _DTYPES[str(dtype).lower()]


def count_full_size(size: str) -> int:
    """Parameter count of a full-size stand-in, built on the meta device (nothing allocated)."""
    size = _normalize_size(size)
    config, _, _, dtype = _family_parts(size)
    return _count(_instantiate(config, dtype, "meta"))


def build_full_size(size: str, out_dir, dtype=None, device: str = "cpu") -> Path:
    """Random-weight stand-in with the real architecture of ``size`` (256m, 500m, 2.2b, plm-1b).

    Weights are created directly in ``dtype`` on ``device`` (no fp32 copy) and saved as
    safetensors in that dtype. The parameter count is printed and checked.
    """
    size = _normalize_size(size)
    config, processor, gen, default_dtype = _family_parts(size)
    dtype = _resolve_dtype(dtype, default_dtype)
    model = _instantiate(config, dtype, device)
    n = _count(model)
    print(f"{size}: {n:,} parameters ({str(dtype).replace('torch.', '')}, built on {device})", flush=True)
    if n != EXPECTED_PARAMS[size]:
        raise AssertionError(f"{size}: {n:,} parameters, expected {EXPECTED_PARAMS[size]:,}")
    out = _save(model, processor, gen, out_dir)
    del model
    return out


def build(family_or_size: str, out_dir) -> Path:
    """Build "smolvlm2" / "perception_lm" (tiny) or a full-size stand-in by size name."""
    key = family_or_size.lower().replace("-", "_")
    if key in ("smolvlm2", "smolvlm", "tiny_smolvlm2"):
        return build_tiny_smolvlm2(out_dir)
    if key in ("perception_lm", "perceptionlm", "plm", "tiny_perception_lm"):
        return build_tiny_perception_lm(out_dir)
    if key in ("whisper", "tiny_whisper"):
        return build_tiny_whisper(out_dir)
    return build_full_size(family_or_size, out_dir)


# --------------------------------------------------------------------------------------
# Whisper (speech recognition)
# --------------------------------------------------------------------------------------

# Published parameter counts of the real checkpoints, which the stand-ins must reproduce.
WHISPER_PARAMS = {"tiny": 37_760_640, "base": 72_593_920}

_WHISPER_SPECS = {
    "whisper-tiny-random": dict(d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                                decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128, vocab_size=None),
    "tiny": dict(d_model=384, encoder_layers=4, decoder_layers=4, encoder_attention_heads=6,
                 decoder_attention_heads=6, encoder_ffn_dim=1536, decoder_ffn_dim=1536, vocab_size=51865),
    "base": dict(d_model=512, encoder_layers=6, decoder_layers=6, encoder_attention_heads=8,
                 decoder_attention_heads=8, encoder_ffn_dim=2048, decoder_ffn_dim=2048, vocab_size=51865),
}
# Same order as the real multilingual vocabulary: <|endoftext|>, <|startoftranscript|>, the
# languages, the tasks, ..., <|nocaptions|> (the no-speech token), <|notimestamps|>; the timestamp
# tokens follow <|notimestamps|> directly (transformers finds them as "<|notimestamps|> + 1").
WHISPER_LANGUAGES = ("en", "fr")
_WHISPER_SPECIALS = ("<|startoftranscript|>", *(f"<|{code}|>" for code in WHISPER_LANGUAGES), "<|translate|>",
                     "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>")
WHISPER_TIMESTAMPS = 1501  # <|0.00|> .. <|30.00|> in 0.02 s steps


def make_whisper_tokenizer():
    """A tiny byte-level BPE in ``WhisperTokenizer`` with Whisper's special and timestamp tokens."""
    from tokenizers import AddedToken
    from transformers import WhisperTokenizer

    trained = json.loads(_train_bpe(["<|endoftext|>"]).to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]
    tokenizer = WhisperTokenizer(vocab=trained["vocab"], merges=merges, extra_special_tokens=list(_WHISPER_SPECIALS),
                                 model_max_length=448)
    tokenizer.add_tokens([AddedToken(f"<|{i * 0.02:.2f}|>", lstrip=False, rstrip=False, normalized=False,
                                     special=False) for i in range(WHISPER_TIMESTAMPS)])
    return tokenizer


def _whisper_parts(size: str, word_timestamps: bool = True):
    from transformers import GenerationConfig, WhisperConfig, WhisperFeatureExtractor, WhisperProcessor

    spec = dict(_WHISPER_SPECS[size])
    tokenizer = make_whisper_tokenizer()
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in ("<|endoftext|>", *_WHISPER_SPECIALS)}
    end, start = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    assert ids["<|notimestamps|>"] + 1 == tokenizer.convert_tokens_to_ids("<|0.00|>")
    vocab = max(spec.pop("vocab_size") or len(tokenizer), len(tokenizer))
    # The real checkpoints suppress a leading blank (220 in GPT-2's vocabulary) and an immediate end.
    blank = tokenizer.convert_tokens_to_ids("Ġ")
    config = WhisperConfig(vocab_size=vocab, num_mel_bins=80, max_source_positions=1500, max_target_positions=448,
                           decoder_start_token_id=start, bos_token_id=end, eos_token_id=end, pad_token_id=end,
                           begin_suppress_tokens=[blank, end], suppress_tokens=[], **spec)
    layers, heads = spec["decoder_layers"], spec["decoder_attention_heads"]
    generation = GenerationConfig(
        decoder_start_token_id=start, bos_token_id=end, eos_token_id=end, pad_token_id=end, max_length=448,
        # A random decoder rarely ends by itself: 24 tokens per 30 s window keep tests quick (the
        # full-size stand-ins leave it to the caller, as the real checkpoints do).
        **({"max_new_tokens": 24} if size == "whisper-tiny-random" else {}),
        no_timestamps_token_id=ids["<|notimestamps|>"], prev_sot_token_id=ids["<|startofprev|>"],
        is_multilingual=True, lang_to_id={f"<|{code}|>": ids[f"<|{code}|>"] for code in WHISPER_LANGUAGES},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        begin_suppress_tokens=[blank, end], suppress_tokens=[], max_initial_timestamp_index=50,
        # The real checkpoints name a few cross-attention heads of the upper decoder layers.
        **({"alignment_heads": [[layer, head] for layer in range(layers // 2, layers) for head in range(heads)]}
           if word_timestamps else {}),
    )
    extractor = WhisperFeatureExtractor(feature_size=80, sampling_rate=16000, hop_length=160, chunk_length=30,
                                        n_fft=400)
    return config, WhisperProcessor(feature_extractor=extractor, tokenizer=tokenizer), generation


def _instantiate_whisper(config, dtype: torch.dtype = torch.float32, device: str = "cpu"):
    from transformers import WhisperForConditionalGeneration

    torch.manual_seed(SEED)
    with torch.device(device):
        model = WhisperForConditionalGeneration._from_config(config, dtype=dtype)
    return model.eval()


def build_tiny_whisper(out_dir, word_timestamps: bool = True) -> Path:
    """Build the ~1 MB random Whisper checkpoint into ``out_dir`` and return its path."""
    config, processor, generation = _whisper_parts("whisper-tiny-random", word_timestamps)
    return _save(_instantiate_whisper(config), processor, generation, out_dir)


def build_full_size_whisper(size: str, out_dir, dtype=None, device: str = "cpu") -> Path:
    """Random stand-in for Whisper ``tiny`` or ``base`` with the real shapes (count checked)."""
    if size not in WHISPER_PARAMS:
        raise ValueError(f"unknown Whisper size {size!r}; choose one of {', '.join(WHISPER_PARAMS)}")
    config, processor, generation = _whisper_parts(size)
    model = _instantiate_whisper(config, _resolve_dtype(dtype, torch.float32), device)
    count = _count(model)
    if count != WHISPER_PARAMS[size]:
        raise AssertionError(f"whisper-{size}: {count:,} parameters, expected {WHISPER_PARAMS[size]:,}")
    return _save(model, processor, generation, out_dir)


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--family", choices=["smolvlm2", "perception_lm", "whisper"], help="tiny random checkpoint")
    what.add_argument(
        "--size", help="full-size stand-in: " + ", ".join(FULL_SIZES) + " (with --count-only: a comma-separated list)"
    )
    parser.add_argument("--out", help="output directory")
    parser.add_argument("--dtype", choices=["bf16", "fp32", "fp16"], help="full-size only; default bf16 for 2.2b/plm-1b, else fp32")
    parser.add_argument("--device", default="cpu", help="full-size only: where to build the weights (cpu, cuda)")
    parser.add_argument("--count-only", action="store_true", help="full-size only: build on meta, print and check the count")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    if args.count_only:
        if not args.size:
            parser.error("--count-only needs --size")
        all_ok = True
        for size in (_normalize_size(s) for s in args.size.split(",") if s.strip()):
            n = count_full_size(size)
            ok = n == EXPECTED_PARAMS[size]
            all_ok &= ok
            print(json.dumps({"size": size, "params": n, "expected": EXPECTED_PARAMS[size], "ok": ok}), flush=True)
        return 0 if all_ok else 1
    if not args.out:
        parser.error("--out is required")
    if args.family:
        out = build(args.family, args.out)
    else:
        out = build_full_size(args.size, args.out, dtype=args.dtype, device=args.device)
    print(f"wrote {out} ({_dir_size(out) / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
