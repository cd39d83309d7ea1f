"""Pure pieces: the limits table, the registry, device/dtype choice and the device lock."""

import threading

import pytest
import torch

from pipelines import registry
from pipelines.devices import DeviceLock, choose_dtype, cpu_has_fast_bf16
from pipelines.errors import BadInputError, GenerationCancelled, ModelUnavailableError
from pipelines.limits import LIMITS, Limit, Limits


def test_limit_check_accepts_range_and_rejects_outside():
    assert LIMITS.max_images_per_message.check(3) == 3
    with pytest.raises(BadInputError, match="Images per message must be between 1 and 8"):
        LIMITS.max_images_per_message.check(9)
    with pytest.raises(BadInputError):
        LIMITS.max_new_tokens.check(0)


def test_limits_from_env_are_clamped_to_bounds():
    limits = Limits.from_env({"VLMS_MAX_IMAGES_PER_MESSAGE": "4", "VLMS_MAX_FRAMES": "100000"})
    assert limits.max_images_per_message.value == 4
    assert limits.max_frames.value == limits.max_frames.maximum == 128
    with pytest.raises(BadInputError, match="must be a number"):
        Limits.from_env({"VLMS_MAX_FRAMES": "lots"})


def test_limits_are_typed_attributes_and_with_value_copies():
    assert all(isinstance(getattr(LIMITS, name), Limit) and getattr(LIMITS, name).name == name
               for name in Limits.names())
    assert len(Limits.names()) == len(set(Limits.names())) == 20  # + speech_tokens, chat_speech_tokens (issue 17)
    changed = LIMITS.with_value("max_frames", 8)
    assert changed.max_frames.value == 8 and LIMITS.max_frames.value == 64  # a copy
    assert LIMITS.with_value("max_frames", 0).max_frames.value == 1  # clamped
    with pytest.raises(KeyError):
        LIMITS.with_value("max_framez", 8)
    with pytest.raises(AttributeError):
        LIMITS.max_framez  # noqa: B018 - a typo is an error, not a silent None


def test_the_environment_counts_only_where_an_entry_point_reads_it(monkeypatch):
    import app

    monkeypatch.setenv("VLMS_MAX_FRAMES", "8")
    assert Limits().max_frames.value == 64 and LIMITS == Limits()  # the table as shipped
    assert Limits.from_env().max_frames.value == 8
    assert app.parse_args([], environ={"VLMS_MAX_FRAMES": "8"}).limits.max_frames.value == 8
    assert app.parse_args([], environ={}).limits == LIMITS


def test_the_highlights_cli_reads_its_limits_when_it_starts(monkeypatch, capsys):
    from pipelines.highlights.__main__ import build_parser

    monkeypatch.setenv("VLMS_WINDOW_SECONDS", "10")
    parser = build_parser()
    base = ["match.mp4", "--criteria", "goals", "--target-seconds", "30", "--out", "out"]
    assert parser.parse_args([*base, "--window-seconds", "10"]).window_seconds == 10
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--window-seconds", "20"])
    assert "must be between 2 and 10 seconds" in capsys.readouterr().err


def test_registry_has_the_six_models_with_family_video_defaults():
    assert len(registry.REGISTRY) == 6
    smol = [s for s in registry.REGISTRY.values() if s.family == registry.SMOLVLM]
    plm = [s for s in registry.REGISTRY.values() if s.family == registry.PERCEPTION_LM]
    assert len(smol) == 3 and len(plm) == 3
    assert all(s.video_fps == 1.0 and s.video_max_frames == 64 for s in smol)
    assert all(s.video_fps is None and s.video_max_frames == 32 for s in plm)


def test_resolve_by_key_repo_id_and_unknown():
    assert registry.resolve("smolvlm2-256m").source == "HuggingFaceTB/SmolVLM2-256M-Video-Instruct"
    assert registry.resolve("facebook/perception-lm-1b").key == "plm-1b"
    with pytest.raises(ModelUnavailableError, match="local checkpoint"):
        registry.resolve("no-such-model")


def test_resolve_local_dir(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "perception_lm", "text_config": {"max_position_embeddings": 4096}}')
    spec = registry.resolve(str(tmp_path))
    assert spec.is_local and spec.family == registry.PERCEPTION_LM and spec.context_length == 4096
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(ModelUnavailableError, match="only SmolVLM and PerceptionLM"):
        registry.resolve(str(tmp_path))


def test_dtype_choice():
    assert cpu_has_fast_bf16("flags : fpu avx512_bf16 sse") is True
    assert cpu_has_fast_bf16("flags : fpu sse avx2") is False
    assert choose_dtype("cuda") == torch.bfloat16
    assert choose_dtype("cpu", "fp32") == torch.float32
    with pytest.raises(BadInputError):
        choose_dtype("cpu", "int3")


def test_device_lock_is_exclusive_and_cancellable():
    lock = DeviceLock()
    inside = []

    def worker():
        for _ in range(200):
            with lock.held():
                inside.append(lock.active)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert lock.max_active == 1 and set(inside) == {1} and lock.passes == 800

    cancel = threading.Event()
    with lock.held():
        cancel.set()
        result = []
        t = threading.Thread(target=lambda: result.append(_try_acquire(lock, cancel)))
        t.start()
        t.join(2)
    assert result == ["cancelled"]


def _try_acquire(lock, cancel):
    try:
        lock.acquire(cancel)
    except GenerationCancelled:
        return "cancelled"
    lock.release()
    return "acquired"
