"""VLM Studio: run the app.

    python app.py [--model M] [--device auto|cpu|cuda] [--dtype auto|bf16|fp16|fp32]
                  [--host 127.0.0.1] [--port 7860] [--share] [--max-file-size MB]
                  [--engine-url http://HOST:PORT/v1] [--engine-in-flight N] [--asr M|off]

Every flag has an environment-variable equivalent for Spaces (VLMS_MODEL, VLMS_DEVICE,
VLMS_DTYPE, VLMS_HOST, VLMS_PORT, VLMS_SHARE, VLMS_MAX_UPLOAD_MB, VLMS_ENGINE_URL,
VLMS_ENGINE_IN_FLIGHT, VLMS_ASR); the model server's API key comes from VLMS_ENGINE_API_KEY only (never a
flag, so it stays out of process listings and logs). Importing this module does no
model work: models load in the background once the server starts.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path

# zerogpu first (keep it above the others): on a ZeroGPU Space `spaces` must patch torch before
# anything initialises CUDA.
from pipelines import __version__, zerogpu  # isort: skip
from components.config import ASSETS_DIR, AppConfig
from pipelines.engines import DEFAULT_IN_FLIGHT
from pipelines.limits import Limits
from pipelines.registry import ASR_REGISTRY, DEFAULT_ASR_MODEL, DEFAULT_CPU_MODEL, DEFAULT_CUDA_MODEL, REGISTRY


def default_model() -> str:
    import torch

    return DEFAULT_CUDA_MODEL if torch.cuda.is_available() else DEFAULT_CPU_MODEL


def parse_args(argv: list[str] | None = None, environ=os.environ) -> AppConfig:
    env = lambda name, default=None: environ.get(f"VLMS_{name}", default)  # noqa: E731
    limits = Limits.from_env(environ)  # VLMS_<LIMIT> settings (README "Limits and security")
    parser = argparse.ArgumentParser(
        prog="app.py",
        description="VLM Studio: chat, compare and highlight videos with SmolVLM2 and PerceptionLM.",
        epilog=f"Models: {', '.join(REGISTRY)}, any hub id of those, or a local checkpoint directory.",
    )
    parser.add_argument("--model", default=env("MODEL"),
                        help="default model: a registry key, hub id or local checkpoint dir "
                             f"(default: {DEFAULT_CUDA_MODEL} with CUDA, else {DEFAULT_CPU_MODEL})")
    parser.add_argument("--device", default=env("DEVICE", "auto"), help="auto, cpu or cuda (default auto)")
    parser.add_argument("--dtype", default=env("DTYPE", "auto"), help="auto, bf16, fp16 or fp32 (default auto)")
    # Spaces (and other Gradio hosts) say where to listen through GRADIO_SERVER_NAME/PORT.
    parser.add_argument("--host", default=env("HOST", environ.get("GRADIO_SERVER_NAME", "127.0.0.1")),
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 to serve your network)")
    parser.add_argument("--port", type=int, default=int(env("PORT", environ.get("GRADIO_SERVER_PORT", 0))) or None,
                        help="port (default: 7860 or the next free one)")
    parser.add_argument("--share", action="store_true", default=env("SHARE", "") in ("1", "true", "yes"),
                        help="create a public gradio.live share link (off by default)")
    parser.add_argument("--max-file-size", type=float, default=float(limits.max_upload_mb.value),
                        metavar="MB", help=f"largest upload in MB (default {limits.max_upload_mb.value:g})")
    parser.add_argument("--no-preload", action="store_true", help="load the model on the first request instead")
    parser.add_argument("--engine-url", default=env("ENGINE_URL"), metavar="URL",
                        help="an OpenAI-compatible model server (vLLM), e.g. http://127.0.0.1:8000/v1: the models it "
                             "serves join the local ones in every model picker (API key: VLMS_ENGINE_API_KEY)")
    parser.add_argument("--engine-in-flight", type=int, default=int(env("ENGINE_IN_FLIGHT", DEFAULT_IN_FLIGHT)),
                        metavar="N", help=f"requests kept open on the model server at once (default {DEFAULT_IN_FLIGHT})")
    parser.add_argument("--asr", default=env("ASR", DEFAULT_ASR_MODEL), metavar="M",
                        help="speech recognition model that hears videos: " + ", ".join(ASR_REGISTRY)
                             + f", a Whisper hub id or local checkpoint dir, or off (default {DEFAULT_ASR_MODEL})")
    parser.add_argument("--version", action="version", version=f"VLM Studio {__version__}")
    args = parser.parse_args(argv)
    args.asr = args.asr.strip() or DEFAULT_ASR_MODEL
    _check_asr(parser, args.asr)
    return AppConfig(
        model=args.model or default_model(),
        device=args.device,
        dtype=args.dtype,
        host=args.host,
        port=args.port,
        share=args.share,
        limits=limits.with_value("max_upload_mb", args.max_file_size),
        preload=not args.no_preload,
        engine_url=args.engine_url or None,
        engine_api_key=env("ENGINE_API_KEY") or None,
        engine_in_flight=max(1, args.engine_in_flight),
        asr_model=args.asr,
        # A model server batches: let as many chats run at once as requests may be in flight.
        **({"concurrency": max(AppConfig.concurrency, args.engine_in_flight)} if args.engine_url else {}),
    )


def _check_asr(parser: argparse.ArgumentParser, name: str) -> None:
    """A mistyped speech model is a start-up error, not a surprise at the first video."""
    from pipelines.errors import ModelUnavailableError
    from pipelines.registry import asr_enabled, resolve_asr

    if asr_enabled(name):
        try:
            resolve_asr(name)
        except ModelUnavailableError as error:
            parser.error(f"--asr: {error}")


def prepare_temp_dir() -> Path:
    """Gradio's uploads and outputs go to a dedicated directory (cleaned by delete_cache)."""
    path = Path(os.environ.setdefault("GRADIO_TEMP_DIR", str(Path(tempfile.gettempdir()) / "vlm-studio")))
    path.mkdir(parents=True, exist_ok=True)
    return path


def launch(config: AppConfig, **overrides):
    from components.layout import CSS, build_app

    prepare_temp_dir()
    demo = build_app(config)
    if config.preload and zerogpu.on_space():
        # On a Space the default model is loaded BEFORE the server starts: the first visitor never
        # waits for it, and ZeroGPU moves only weights that exist at start-up onto its GPUs.
        logging.getLogger("vlm_studio").info("Space: loading %s before serving", config.model)
        demo.vlm_status.wait()
    demo.queue(max_size=int(config.limits.queue_size.value))
    options = dict(
        server_name=config.host,
        server_port=config.port,
        share=config.share,
        max_file_size=config.max_file_size,
        allowed_paths=[str(ASSETS_DIR)],
        show_error=True,
        css=CSS,
    )
    options.update(overrides)
    demo.launch(**options)
    return demo


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    launch(parse_args(argv))


if __name__ == "__main__":
    main()
