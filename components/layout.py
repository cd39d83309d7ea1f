"""build_app(config) -> gr.Blocks: the banner, the tabs, and the About panel."""

from __future__ import annotations

import gradio as gr

from .chat_tab import build_chat_tab
from .compare_tab import build_compare_tab
from .config import AppConfig
from .highlights_tab import build_highlights_tab
from .status import ModelStatus

TITLE = "VLM Studio"
CSS = """
#banner:empty { display: none; }
footer { display: none !important; }
"""


def build_app(config: AppConfig) -> gr.Blocks:
    status = ModelStatus(config)
    with gr.Blocks(title=TITLE, delete_cache=(1800, 3600)) as demo:
        gr.Markdown(f"# {TITLE}\nSmall vision-language models (SmolVLM2, PerceptionLM): chat, compare, highlights.")
        banner = gr.Markdown(elem_id="banner")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                build_chat_tab(config)
            with gr.Tab("Compare", id="compare"):
                build_compare_tab(config)
            with gr.Tab("Highlights", id="highlights"):
                build_highlights_tab(config)
            with gr.Tab("About", id="about"):
                about = gr.Markdown()
        demo.load(lambda: (status.banner(), _about(config, status)), None, [banner, about], api_name=False)
        # Poll while the default model loads so the banner clears (or shows the failure) by itself.
        timer = gr.Timer(1.0, active=config.preload)
        timer.tick(lambda: (status.banner(), _about(config, status), gr.Timer(active=status.state == "loading")),
                   None, [banner, about, timer], api_name=False, show_progress="hidden")
    demo.vlm_status = status
    if config.preload:
        status.preload()
    return demo


def _about(config: AppConfig, status: ModelStatus) -> str:
    import platform
    from importlib.metadata import version

    import torch

    from pipelines import __version__, zerogpu
    from pipelines.devices import choose_device, choose_dtype, dtype_name

    device = choose_device(config.device)
    dtype = dtype_name(choose_dtype(device, config.dtype))
    versions = ", ".join(f"{name} {version(name)}" for name in ("gradio", "transformers", "torch"))
    return (
        f"**{TITLE}** {__version__}  \n**Default model:** {config.model}  \n**Device:** {device} ({dtype}); "
        f"CUDA available: {torch.cuda.is_available()}; ZeroGPU: {'yes' if zerogpu.enabled() else 'no'}  \n"
        f"**Status:** {status.message or status.state}  \n"
        f"**Versions:** Python {platform.python_version()}, {versions}"
    )
