"""VLM Studio's pipeline layer: model registry and loading, media, message building, streaming
generation, scoring and highlights. Never imports gradio; every tab and the CLI call into it."""

__version__ = "0.1.0"  # VLM Studio's own version: shown in the About tab and by app.py --version
