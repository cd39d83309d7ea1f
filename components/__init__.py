"""Gradio UI. Knows nothing about models: callbacks turn Gradio values into typed pipeline
requests, call the pipeline, and format what comes back."""
