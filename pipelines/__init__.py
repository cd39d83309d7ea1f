"""VLM Studio's pipeline layer: model registry and loading, media, message building, streaming
generation, scoring and highlights. Never imports gradio; every tab and the CLI call into it."""
