"""The model registry: one table of supported models, plus any local checkpoint directory.

``resolve(name)`` accepts a registry key ("smolvlm2-256m"), a hub repo id
("HuggingFaceTB/SmolVLM2-256M-Video-Instruct") or a local directory holding a SmolVLM or
PerceptionLM checkpoint (that is how the tests and offline users run). Family-specific video
defaults live here so that every tab samples frames the way the checkpoint was trained.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, TypeVar

from .errors import ModelUnavailableError

SMOLVLM = "smolvlm"
PERCEPTION_LM = "perception_lm"


@dataclass(frozen=True)
class ModelSpec:
    """What the pipeline needs to know about a model before loading it."""

    key: str
    source: str  # hub repo id or local directory
    family: str  # SMOLVLM | PERCEPTION_LM
    label: str
    params: int  # parameter count, for memory estimates (0 = unknown until loaded)
    context_length: int
    video_fps: float | None  # None: fixed frame count (PerceptionLM)
    video_max_frames: int
    is_local: bool = False

    def estimated_bytes(self, bytes_per_param: int) -> int:
        """Weights plus ~20% for activations and caches: the figure the Compare tab checks."""
        return int(self.params * bytes_per_param * 1.2)


def _smol(key: str, repo: str, label: str, params: int) -> ModelSpec:
    return ModelSpec(key, repo, SMOLVLM, label, params, 8192, 1.0, 64)


def _plm(key: str, repo: str, label: str, params: int) -> ModelSpec:
    return ModelSpec(key, repo, PERCEPTION_LM, label, params, 11520, None, 32)


REGISTRY: dict[str, ModelSpec] = {
    spec.key: spec
    for spec in (
        _smol("smolvlm2-256m", "HuggingFaceTB/SmolVLM2-256M-Video-Instruct", "SmolVLM2 256M", 256_484_928),
        _smol("smolvlm2-500m", "HuggingFaceTB/SmolVLM2-500M-Video-Instruct", "SmolVLM2 500M", 507_482_304),
        _smol("smolvlm2-2.2b", "HuggingFaceTB/SmolVLM2-2.2B-Instruct", "SmolVLM2 2.2B", 2_246_784_880),
        _plm("plm-1b", "facebook/Perception-LM-1B", "PerceptionLM 1B", 1_533_524_992),
        _plm("plm-3b", "facebook/Perception-LM-3B", "PerceptionLM 3B", 3_600_000_000),
        _plm("plm-8b", "facebook/Perception-LM-8B", "PerceptionLM 8B", 8_600_000_000),
    )
}

DEFAULT_CPU_MODEL = "smolvlm2-256m"
DEFAULT_CUDA_MODEL = "smolvlm2-2.2b"

_MODEL_TYPES = {"smolvlm": SMOLVLM, "perception_lm": PERCEPTION_LM}


def choices() -> list[tuple[str, str]]:
    """(label, key) pairs for a dropdown, in registry order."""
    return [(spec.label, spec.key) for spec in REGISTRY.values()]


T = TypeVar("T")


def _find(table: dict, name: str, local: Callable[[Path], T]) -> T | None:
    """The spec of ``table`` named by its key or its hub id (any case), or ``local(path)`` for an
    existing directory; None otherwise (an empty name included)."""
    name = (name or "").strip()
    if name in table:
        return table[name]
    for spec in table.values():
        if spec.source.lower() == name.lower():
            return spec
    path = Path(name).expanduser()
    return local(path) if name and path.is_dir() else None


def resolve(name: str) -> ModelSpec:
    """Find the spec for a registry key, a hub repo id or a local checkpoint directory."""
    spec = _find(REGISTRY, name, _local_spec)
    if spec is not None:
        return spec
    name = (name or "").strip()
    known = ", ".join(REGISTRY)
    raise ModelUnavailableError(
        f"Unknown model '{name}'. Use one of: {known}, a hub id such as "
        f"{REGISTRY[DEFAULT_CPU_MODEL].source}, or the path of a local checkpoint directory."
    )


def _local_spec(path: Path) -> ModelSpec:
    config_file = path / "config.json"
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError):
        raise ModelUnavailableError(
            f"'{path}' is not a model checkpoint: it has no readable config.json."
        ) from None
    family = _MODEL_TYPES.get(config.get("model_type", ""))
    if family is None:
        raise ModelUnavailableError(
            f"'{path}' holds a '{config.get('model_type')}' model; only SmolVLM and PerceptionLM "
            "checkpoints are supported."
        )
    template = _smol if family == SMOLVLM else _plm
    text = config.get("text_config", {})
    context = int(text.get("max_position_embeddings") or (8192 if family == SMOLVLM else 11520))
    spec = template(str(path.resolve()), str(path.resolve()), f"Local: {path.name}", 0)
    return replace(spec, context_length=context, is_local=True)


# --------------------------------------------------------------------------------------------------
# Speech recognition (ASR): a separate, small table. Whisper only (pipelines.speech runs it through
# transformers' automatic-speech-recognition pipeline). ``resolve_asr`` takes a key, a hub id or a
# local Whisper checkpoint directory; ``asr_enabled("off")`` is how settings turn speech off.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AsrSpec:
    key: str
    source: str  # hub repo id or local directory
    label: str
    params: int  # 0 = unknown (a local checkpoint)
    is_local: bool = False


ASR_REGISTRY: dict[str, AsrSpec] = {
    spec.key: spec
    for spec in (
        AsrSpec("whisper-tiny", "openai/whisper-tiny", "Whisper tiny", 37_760_640),
        AsrSpec("whisper-base", "openai/whisper-base", "Whisper base", 72_593_920),
        AsrSpec("whisper-small", "openai/whisper-small", "Whisper small", 241_734_912),
    )
}

# The default is chosen for CPU speed (most users of the app have no GPU): tiny transcribes a
# minute of speech in ~6 s on 2 idle cores, base in ~9 s (bf16, full-size random stand-ins
# decoding 120 tokens per 30 s window; benchmarks/speech.py), small has ~3x base's weights. Base and small
# are more accurate: pass --asr whisper-base (or whisper-small on a GPU) when that matters more.
DEFAULT_ASR_MODEL = "whisper-tiny"
ASR_OFF = frozenset({"off", "none", "no"})


def asr_enabled(name: str | None) -> bool:
    """False for the settings that turn transcription off ("off", "none", "no")."""
    return (name or "").strip().lower() not in ASR_OFF


def asr_choices() -> list[tuple[str, str]]:
    """(label, key) pairs for a dropdown, in table order."""
    return [(spec.label, spec.key) for spec in ASR_REGISTRY.values()]


def resolve_asr(name: str) -> AsrSpec:
    """The spec of a speech-recognition model: a key of ``ASR_REGISTRY``, its hub id, or a local
    directory holding a Whisper checkpoint. Anything else raises ModelUnavailableError."""
    spec = _find(ASR_REGISTRY, name, _local_asr_spec)
    if spec is not None:
        return spec
    name = (name or "").strip()
    raise ModelUnavailableError(
        f"Unknown speech recognition model '{name}'. Use one of: {', '.join(ASR_REGISTRY)}, a hub id such as "
        f"{ASR_REGISTRY[DEFAULT_ASR_MODEL].source}, the path of a local Whisper checkpoint directory, or 'off'."
    )


def _local_asr_spec(path: Path) -> AsrSpec:
    try:
        model_type = json.loads((path / "config.json").read_text()).get("model_type")
    except (OSError, ValueError):
        raise ModelUnavailableError(f"'{path}' is not a speech recognition checkpoint: it has no readable config.json.") from None
    if model_type != "whisper":
        raise ModelUnavailableError(
            f"'{path}' holds a '{model_type}' model; speech recognition takes a Whisper checkpoint (model_type 'whisper')."
        )
    resolved = str(path.resolve())
    return AsrSpec(resolved, resolved, f"Local: {path.name}", 0, is_local=True)
