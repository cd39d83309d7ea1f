"""Benchmarks that measure VLM Studio against the reference approaches in one run.

Run them all with ``python -m benchmarks.run --device cpu`` (or ``--device cuda``)."""
