"""The benchmark code paths that only run in full on a lent GPU, kept working on the CPU with the
tiny checkpoints (the figures themselves come from ``python -m benchmarks.run``)."""

from __future__ import annotations

import pytest
import torch

from benchmarks import chat_overhead, common, gpu, memory
from benchmarks import run as bench_run


@pytest.fixture()
def bench_cache(tmp_path, monkeypatch):
    """Generated benchmark media go to a temp dir, not the user's cache."""
    for module in (common, gpu, chat_overhead, memory):
        monkeypatch.setattr(module, "CACHE_DIR", tmp_path)
    return tmp_path


def test_copy_bandwidth_is_a_plausible_rate():
    rate = gpu.copy_bandwidth("cpu", megabytes=16, repeats=3)
    assert 1e8 < rate < 1e13  # between 0.1 GB/s and 10 TB/s


def test_decode_weights_are_the_text_decoder_and_head_only(tiny_smolvlm):
    from pipelines.runtime import Runtime

    model = Runtime(device="cpu", dtype="fp32").load(str(tiny_smolvlm)).model
    everything = sum(p.numel() * p.element_size() for p in model.parameters())
    vision = sum(p.numel() * p.element_size() for p in model.model.vision_model.parameters())
    read = gpu.decode_weight_bytes(model)
    assert 0 < read <= everything - vision


def test_static_cache_decodes_the_same_tokens_as_eager(tiny_smolvlm, tiny_plm):
    rows = gpu.decode_rows("tiny", tiny_smolvlm, "cpu", bandwidth=1e10, new_tokens=6)
    comparison = rows[-1]
    assert [r.case.rsplit(", ", 1)[-1] for r in rows[:2]] == ["eager", "static"]
    assert all(r.ours > 0 and 0 < r.ratio for r in rows[:2])
    assert "tokens identical to eager: True" in rows[1].note  # outputs unchanged, or it cannot be adopted
    assert comparison.ratio == pytest.approx(rows[1].ours / rows[0].ours)


def test_time_to_first_token_rows_for_an_image_and_a_64_frame_video(tiny_smolvlm, bench_cache):
    rows = gpu.ttft_rows("tiny", tiny_smolvlm, "cpu")
    assert [r.case.split(", ")[1].split(" (")[0] for r in rows] == ["one image", "64-frame video"]
    assert all(r.ours > 0 for r in rows)


def test_scan_row_scores_every_window(tiny_smolvlm, bench_cache):
    row = gpu.scan_row(tiny_smolvlm, "cpu", seconds=30, batch_size=4)
    assert "3 windows" in row.case and row.ours > 0
    assert row.reference == pytest.approx(gpu.SCAN_TARGET_S * 30 / gpu.SCAN_SECONDS)


def test_runner_refuses_unknown_benchmarks_and_cuda_without_a_gpu(capsys):
    with pytest.raises(SystemExit):
        bench_run.main(["--only", "nonsense"])
    assert "unknown benchmark" in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            gpu.run(device="cuda", quick=True)
