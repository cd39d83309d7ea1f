"""Issue 14's house rules that a test can hold: nothing happens at import, caches are bounded,
files are classified once, one out-of-memory test, and a model load blocks no one who only asks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from components.history import to_turns
from pipelines import attachments, isolation, loading
from pipelines.errors import BadInputError, OutOfMemoryError
from pipelines.highlights import cache
from pipelines.memo import BoundedMemo
from pipelines.memory import is_out_of_memory
from tests import media_factory as mf

ROOT = Path(__file__).resolve().parent.parent

_IMPORT_PROBE = """
import json, multiprocessing.forkserver as fs, multiprocessing.spawn as spawn
from PIL import Image
before = {"pixels": Image.MAX_IMAGE_PIXELS, "prep": spawn.get_preparation_data, "preload": list(fs._forkserver._preload_modules)}
import pipelines.media, pipelines.isolation, pipelines.attachments, pipelines.limits
after = {"pixels": Image.MAX_IMAGE_PIXELS, "prep": spawn.get_preparation_data, "preload": list(fs._forkserver._preload_modules)}
print(json.dumps({"unchanged": before == after, "max_frames": pipelines.limits.LIMITS.max_frames.value}))
kind = pipelines.isolation.file_kind(VIDEO)  # the first use sets up the fork server
print(json.dumps({"kind": kind, "preload": list(fs._forkserver._preload_modules),
                  "filtered": spawn.get_preparation_data is not after["prep"]}))
"""


def test_importing_the_media_layer_changes_nothing_process_wide(short_video):
    env = {**os.environ, "VLMS_MAX_FRAMES": "8", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", _IMPORT_PROBE.replace("VIDEO", repr(str(short_video)))], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    at_import, at_first_use = (json.loads(line) for line in done.stdout.splitlines()[-2:])
    assert at_import == {"unchanged": True, "max_frames": 64}  # no Pillow, multiprocessing or env change
    assert at_first_use == {"kind": "video", "preload": ["pipelines.media", "decord"], "filtered": True}


@pytest.mark.parametrize("error, expected", [
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"), True),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 68719476736 bytes"), True),
    (MemoryError(), True),
    (RuntimeError("shape mismatch"), False),
    (ValueError("not enough memory"), False),  # only the allocator's RuntimeError says it that way
])
def test_one_out_of_memory_test(error, expected):
    assert is_out_of_memory(error) is expected


@pytest.mark.parametrize("error, raised", [
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"), OutOfMemoryError),
    (torch.OutOfMemoryError("CUDA out of memory."), OutOfMemoryError),
    (RuntimeError("a bug, not memory"), RuntimeError),
])
def test_scoring_words_every_kind_of_out_of_memory(tiny_smolvlm, short_video, error, raised):
    """Scoring once caught only CUDA's error: the CPU allocator's went up as a bug."""
    from pipelines import media
    from pipelines.runtime import Runtime
    from pipelines.scoring import Scorer

    def forward_logits(*args, **kwargs):
        raise error

    loaded = Runtime("cpu", "fp32").load(str(tiny_smolvlm))
    scorer = Scorer(loaded, "Is anything moving?", forward_logits=forward_logits)
    with pytest.raises(raised) as caught:
        scorer.score_batch([media.load_video(short_video, 1.0, 2)])
    assert type(caught.value) is raised
    if raised is OutOfMemoryError:
        assert "ran out of memory while scoring" in str(caught.value)


def test_the_processor_call_words_the_cpu_allocators_out_of_memory(tiny_smolvlm, monkeypatch):
    """The chat's processor call once caught only MemoryError."""
    from pipelines import encoding
    from pipelines.messages import BuiltConversation
    from pipelines.runtime import Runtime

    loaded = Runtime("cpu", "fp32").load(str(tiny_smolvlm))
    built = BuiltConversation([{"role": "user", "content": [{"type": "text", "text": "Hello"}]}])
    assert encoding.encode(loaded, built, "low")["input_ids"].shape[0] == 1  # the real call works

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(loaded.processor, "apply_chat_template", out_of_memory)
    with pytest.raises(OutOfMemoryError, match="ran out of memory"):
        encoding.encode(loaded, built, "low")


def test_a_model_load_does_not_block_is_loaded(tiny_smolvlm, monkeypatch):
    loading.unload_model(str(tiny_smolvlm), "cpu", "fp32")
    release, started = threading.Event(), threading.Event()
    real_load = loading._load_uncached

    def slow_load(*args):
        started.set()
        release.wait(30)  # a load that takes as long as the test wants
        return real_load(*args)

    monkeypatch.setattr(loading, "_load_uncached", slow_load)
    loader = threading.Thread(target=loading.load_model, args=(str(tiny_smolvlm), "cpu", "fp32"))
    loader.start()
    try:
        assert started.wait(30)
        asked = time.monotonic()
        assert loading.is_loaded(str(tiny_smolvlm), "cpu", "fp32") is False
        assert time.monotonic() - asked < 1.0
    finally:
        release.set()
        loader.join(60)
    assert loading.is_loaded(str(tiny_smolvlm), "cpu", "fp32") is True
    loading.unload_model(str(tiny_smolvlm), "cpu", "fp32")


def test_the_content_hash_memo_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "_hash_memo", BoundedMemo(3))
    files = [tmp_path / f"f{i}" for i in range(6)]
    for i, file in enumerate(files):
        file.write_bytes(bytes([i]) * 100)
        cache.file_sha256(file)
    assert len(cache._hash_memo) == 3
    assert cache.file_sha256(files[0]) == cache.file_sha256(files[0])  # forgotten, hashed again: same


def test_a_bounded_memo_forgets_the_least_recently_used():
    memo = BoundedMemo(2)
    memo.put("a", 1)
    memo.put("b", 2)
    assert memo.get("a") == 1  # "b" is now the least recently used
    memo.put("c", 3)
    assert (memo.get("a"), memo.get("b"), memo.get("c"), len(memo)) == (1, None, 3, 2)
    with pytest.raises(ValueError):
        BoundedMemo(0)


def _history(paths: list[Path]) -> list[dict]:
    history = []
    for number, path in enumerate(paths):
        history.append({"role": "user", "content": [{"path": str(path)}, f"question {number}"]})
        history.append({"role": "assistant", "content": f"answer {number}"})
    return history


def test_to_turns_probes_each_video_once_per_file_version(tmp_path, monkeypatch):
    """The history is rebuilt on every message; earlier videos must not start a child each time."""
    videos = [mf.make_video(tmp_path / f"clip{i}.mp4", 1, fps=10, size=(64, 48)) for i in range(3)]
    image = mf.make_image(tmp_path / "photo.png", "RGB", (32, 24), "PNG")
    children = []
    real_run = isolation.run
    monkeypatch.setattr(isolation, "run", lambda *a, **k: (children.append(a[0].__name__), real_run(*a, **k))[1])

    history = _history([videos[0], image, videos[1]])
    turns = to_turns(history)
    assert [a.kind for turn in turns for a in turn.attachments] == ["video", "image", "video"]
    assert children == ["file_kind", "file_kind"]  # one child per video; images are read in-process
    for _ in range(3):  # three more messages: only the new video is probed
        history = _history([videos[0], image, videos[1], videos[2]])
        to_turns(history)
    assert children == ["file_kind"] * 3

    videos[0].write_bytes(mf.make_video(tmp_path / "other.mp4", 2, fps=10, size=(64, 48)).read_bytes())
    os.utime(videos[0], ns=(time.time_ns(), time.time_ns() + 10**9))  # replaced in place: new version
    to_turns(history)
    assert children == ["file_kind"] * 4


def test_an_unusable_file_is_not_remembered(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("just text")
    for _ in range(2):  # each attempt says why
        with pytest.raises(BadInputError, match="notes.mp4"):
            attachments.classify(path)
    assert attachments.kind_of(path) is None
