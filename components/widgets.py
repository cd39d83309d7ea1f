"""Widgets shared by several tabs: the model picker and the generation settings.

Slider ranges come from the limits table, so the UI can never offer what the pipeline refuses.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from pipelines import engines, registry
from pipelines.generation import GenerationSettings
from pipelines.limits import DEFAULT_MAX_NEW_TOKENS, DEFAULT_TEMPERATURE, DEFAULT_TOP_P, Limits


def model_picker(default: str, label: str = "Model", elem_id: str | None = None, runtime=None) -> gr.Dropdown:
    """The registry's models, then (with ``runtime.engine_url``) what the model server serves."""
    choices = engines.model_choices(runtime) if runtime is not None else registry.choices()
    if default not in {key for _, key in choices}:
        choices = [(_local_label(default), default), *choices]
    return gr.Dropdown(
        choices=choices,
        value=default,
        label=label,
        allow_custom_value=True,
        info="Pick a model or type the path of a local checkpoint directory.",
        elem_id=elem_id,
    )


def _local_label(source: str) -> str:
    try:
        return registry.resolve(source).label
    except Exception:
        return source


@dataclass
class GenerationControls:
    system_prompt: gr.Textbox
    max_new_tokens: gr.Slider
    greedy: gr.Checkbox
    temperature: gr.Slider
    top_p: gr.Slider
    image_detail: gr.Radio

    def components(self) -> list:
        return [self.system_prompt, self.max_new_tokens, self.greedy, self.temperature, self.top_p, self.image_detail]


def generation_controls(limits: Limits, system_prompt: bool = True) -> GenerationControls:
    return GenerationControls(
        system_prompt=gr.Textbox(value="", label="System prompt", lines=2, visible=system_prompt,
                                 placeholder="Optional instructions for the assistant"),
        max_new_tokens=gr.Slider(1, int(limits.max_new_tokens.value), value=DEFAULT_MAX_NEW_TOKENS, step=1,
                                 label="Max new tokens"),
        greedy=gr.Checkbox(value=True, label="Greedy decoding (deterministic)"),
        temperature=gr.Slider(limits.temperature.minimum, limits.temperature.value, value=DEFAULT_TEMPERATURE,
                              step=0.05, label="Temperature (when not greedy)"),
        top_p=gr.Slider(limits.top_p.minimum, limits.top_p.value, value=DEFAULT_TOP_P, step=0.05,
                        label="Top-p (when not greedy)"),
        image_detail=gr.Radio(["auto", "low", "high"], value="auto", label="Image detail",
                              info="low: one tile per image (fast); high: the model's own tiling (sharper, "
                                   "slower); auto: high on a GPU, low on a CPU"),
    )


def settings_from(max_new_tokens, greedy, temperature, top_p) -> GenerationSettings:
    return GenerationSettings(
        max_new_tokens=int(max_new_tokens), greedy=bool(greedy), temperature=float(temperature), top_p=float(top_p)
    )


def video_controls(limits: Limits) -> tuple[gr.Slider, gr.Slider]:
    fps = gr.Slider(limits.video_fps.minimum, limits.video_fps.value, value=1.0, step=0.05,
                    label="Video frames per second (SmolVLM2)",
                    info="PerceptionLM always samples a fixed number of frames.")
    frames = gr.Slider(0, int(limits.max_frames.value), value=0, step=1,
                       label="Max video frames (0 = model default: 64 SmolVLM2, 32 PerceptionLM)")
    return fps, frames


def chunk_stats(chunk) -> list[str]:
    """Speed and length of an answer so far (Chat and both Compare panes show the same figures)."""
    if chunk is None:
        return []
    parts = []
    if chunk.time_to_first_token is not None:
        parts.append(f"first token {chunk.time_to_first_token:.2f} s")
    if chunk.tokens_per_second:
        parts.append(f"{chunk.tokens_per_second:.1f} tok/s")
    parts.append(f"{chunk.generated_tokens} new tokens")
    return parts


def finish_note(chunk) -> list[str]:
    if chunk is not None and chunk.finish_reason == "cancelled":
        return ["stopped"]
    if chunk is not None and chunk.finish_reason == "length":
        return ["hit the new-token limit"]
    return []


def stopped_stats(line: str) -> str:
    """The stats line of a reply the user stopped: "stopped" added once, after the figures (any
    notices below the first line are kept)."""
    first, newline, rest = (line or "").partition("\n")
    if not first.strip() or first.endswith(" · stopped"):
        return line
    return f"{first} · stopped{newline}{rest}"


def format_stats(chunk, prepared) -> str:
    """The stats line shown under the answer (never inside the reply text)."""
    parts = chunk_stats(chunk)
    prompt = prepared.prompt_tokens or (chunk.prompt_tokens if chunk is not None else 0)  # a server counts them
    parts.append(f"{prepared.visual_tokens:,} visual of {prompt:,} prompt tokens")
    parts.append(prepared.description)
    parts += finish_note(chunk)
    line = " · ".join(parts)
    notes = "".join(f"\n\n> {notice}" for notice in prepared.notices)
    return line + notes
