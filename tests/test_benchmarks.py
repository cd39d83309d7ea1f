"""The benchmark code paths that only run in full on a lent GPU, kept working on the CPU with the
tiny checkpoints (the figures themselves come from ``python -m benchmarks.run``)."""

from __future__ import annotations

import pytest
import torch

from benchmarks import chat_overhead, common, gpu, highlights_vs_reference, memory
from benchmarks import run as bench_run

pytestmark = pytest.mark.slow  # the benchmarks' code paths end to end (~1 min): not in the fast tier


@pytest.fixture()
def bench_cache(tmp_path, monkeypatch):
    """Generated benchmark media go to a temp dir, not the user's cache."""
    for module in (common, gpu, chat_overhead, highlights_vs_reference, memory):
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


def test_paired_ratios_favour_the_better_side_whatever_the_unit():
    assert chat_overhead.paired_ratios([2.0, 4.0], [1.0, 2.0], higher_is_better=False) == [0.5, 0.5]  # slower TTFT
    assert chat_overhead.paired_ratios([22.0], [20.0], higher_is_better=True) == [pytest.approx(1.1)]  # faster decode
    with pytest.raises(ValueError):
        chat_overhead.paired_ratios([1.0], [1.0, 2.0], higher_is_better=True)


def test_overhead_row_judges_the_median_pair_and_reports_the_spread():
    # One noisy round (3.0 s) does not decide the verdict; the median pair does.
    row = chat_overhead.overhead_row("TTFT x", "s", ours=[1.0, 1.02, 3.0], bare=[1.0, 1.0, 1.0])
    assert row.ratio == pytest.approx(1 / 1.02) and row.met is True
    assert "3 paired rounds, ratios 0.33-1.00" in row.note
    slow = chat_overhead.overhead_row("decode x", "tok/s", ours=[9.0, 9.0, 9.0], bare=[10.0, 10.0, 10.0])
    assert slow.ratio == pytest.approx(0.9) and slow.met is False


def test_chat_overhead_drives_the_pipeline_and_a_bare_generate_on_the_same_inputs(tiny_smolvlm, bench_cache):
    m = chat_overhead.measure(tiny_smolvlm, "fp32", "image", repeats=2)
    assert len(m["ours"]) == len(m["bare"]) == 2 and m["visual_tokens"] > 0
    for ttft, tokens_per_second in m["ours"] + m["bare"]:
        assert ttft > 0 and tokens_per_second > 0


def test_results_name_the_cpu_because_bf16_speed_depends_on_its_extensions():
    info = common.machine()
    assert info["cpus"] >= 1 and info["cpu"].endswith(")") and "unknown (" not in info["cpu"]


def test_highlights_rows_give_the_end_to_end_ratio_and_each_stage(tiny_smolvlm, bench_cache):
    figures = highlights_vs_reference.measure(quick=True, every=6, model=tiny_smolvlm, policy="typical")
    (end_to_end, rescored, signals_cost, following_cost, size_cost, reframe_cost, criteria, windows,
     render) = highlights_vs_reference.rows(figures)
    costs = figures["ours"]["costs"]
    assert rescored.ours == costs["rescore_s"] and rescored.reference == end_to_end.ours
    assert rescored.met == (costs["rescore_s"] <= 0.10 * end_to_end.ours) and "of the first run" in rescored.note
    assert all(value > 0 for value in costs.values())
    shares = highlights_vs_reference.cost_shares(costs)
    spared = costs["signals_one_pass_cpu_s"] - costs["scan_decode_cpu_s"]  # one pass less the decoding it spares
    assert shares["signals"] == pytest.approx(spared / costs["scan_cpu_s"]) and signals_cost.ours == spared
    assert signals_cost.met == (shares["signals"] <= 0.15) and f"{shares['signals']:+.1%}" in signals_cost.note
    assert following_cost.met == (shares["following"] <= 0.30) and size_cost.met is None
    assert following_cost.reference == size_cost.ours == costs["vertical_center_render_cpu_s"]
    assert reframe_cost.met == (shares["reframe"] <= 0.30) and f"{shares['reframe']:+.0%}" in reframe_cost.note
    assert end_to_end.ratio == pytest.approx(end_to_end.reference / end_to_end.ours)
    assert figures["model"] == str(tiny_smolvlm)  # a given checkpoint never builds the full-size stand-in
    assert not (bench_cache / "standin-256m").exists()
    stages = (criteria, windows, render)
    assert [row.case.split(": ")[1].split(",")[0] for row in stages] == ["criteria", "decode + score", "render + export"]
    assert all(row.ours > 0 for row in stages)
    # The stages are the end-to-end figures taken apart (ours also loads the model once), and
    # nothing else is timed with them (the cost rows' own measurements once were: ~11 s of 118).
    assert sum(row.ours for row in stages) <= end_to_end.ours
    timed = sum(figures["ours"]["phases_s"].values())
    assert end_to_end.ours == pytest.approx(timed, abs=0.05 * timed + 0.5)
    assert windows.reference == pytest.approx(figures["reference"]["phases_s"]["windows_extrapolated"])


def test_speech_rows_time_the_soundtrack_and_whisper_per_audio_minute(tiny_whisper, speech_video):
    from benchmarks import speech

    figures = speech.measure(tiny_whisper, speech_video, tokens_per_window=6)
    assert abs(figures["audio_s"] - 12.0) < 0.1 and figures["windows"] == 1 and figures["tokens"] == 6
    assert figures["decode_s"] > 0 and figures["transcribe_s"] > 0
    per_minute, ten_minutes = speech.rows_for("tiny", "fp32", figures)
    seconds_per_minute = (figures["decode_s"] + figures["transcribe_s"]) / (figures["audio_s"] / 60)
    assert per_minute.ours == round(seconds_per_minute, 2) and per_minute.ratio == round(60 / seconds_per_minute, 2)
    assert ten_minutes.ours == round(10 * seconds_per_minute, 1)


def test_vision_batch_times_every_size_through_the_apps_encoder(tiny_model, capsys):
    from benchmarks import vision_batch

    results = vision_batch.seconds_per_frame(tiny_model, [1, 2, 4], dtype="fp32")
    assert sorted(results) == [1, 2, 4] and all(0 < seconds < 10 for seconds in results.values())
    assert vision_batch.main(["--model", str(tiny_model), "--batches", "1,3", "--dtype", "fp32"]) == 0
    printed = capsys.readouterr().out
    assert "3 frames per call" in printed and "fastest:" in printed
