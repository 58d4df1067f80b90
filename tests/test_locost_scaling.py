"""The LOCOST scaling benchmark's plumbing: sizes, child processes, fits and the report (tiny models only)."""

from __future__ import annotations

import json

import pytest

from qfsum.bench import locost_scaling as ls
from qfsum.errors import QfsumError

TINY = dict(layers=1, width=32, heads=4, state_size=8, vocab_size=100, time_limit=900, memory_limit_gb=8.0)  # limits never reached


def test_sizes_parse_with_k_as_1024_and_sort():
    assert ls.parse_sizes("4K, 1K,600K,1K") == [1024, 4096, 614400]
    assert ls.parse_sizes("300") == [300]
    assert ls.label(614400) == "600K" and ls.label(300) == "300"


@pytest.mark.parametrize("bad", ["", "1M", "-4K", "K", "x"])
def test_bad_sizes_are_a_clear_error(bad):
    with pytest.raises(QfsumError):
        ls.parse_sizes(bad)


def test_config_rejects_unknown_models():
    with pytest.raises(QfsumError, match="unknown model"):
        ls.ScalingConfig(models=("locost", "mamba"), memory_limit_gb=1.0)


def test_time_limits_take_a_default_and_per_model_overrides():
    assert ls.parse_time_limits("2400,dense-sdpa=600") == (2400.0, {"dense-sdpa": 600.0})
    assert ls.parse_time_limits("90") == (90.0, {})
    config = ls.ScalingConfig(time_limit=2400, model_time_limits={"dense-sdpa": 600}, memory_limit_gb=1.0)
    assert (config.limit_for("locost"), config.limit_for("dense-sdpa")) == (2400, 600)


@pytest.mark.parametrize("bad", ["soon", "dense-sdpa=x", "-5", "mamba=60"])
def test_bad_time_limits_are_a_clear_error(bad):
    with pytest.raises(QfsumError, match="time-limit"):
        default, overrides = ls.parse_time_limits(bad)
        ls.ScalingConfig(time_limit=default, model_time_limits=overrides, memory_limit_gb=1.0)


def test_feed_forward_widths_follow_the_width():
    config = ls.ScalingConfig(width=768, memory_limit_gb=1.0)
    assert (config.locost_d_ff, config.dense_d_ff) == (2048, 3072)


def test_time_exponent_is_the_log_log_slope_from_16k():
    rows = [{"model": "locost", "tokens": n, "status": "ok", "seconds": 1e-6 * n ** 1.05} for n in (1024, 16384, 65536, 262144)]
    rows.append({"model": "locost", "tokens": 614400, "status": "time limit"})
    rows[0]["seconds"] = 100.0  # below 16K: ignored
    assert ls.time_exponent(rows, "locost") == pytest.approx(1.05)
    assert ls.time_exponent(rows[:2], "locost") is None


def test_targets_report_the_memory_ratio_and_missing_points():
    config = ls.ScalingConfig(sizes=[16384], models=("locost", "dense-sdpa", "dense-eager"), memory_limit_gb=4.0)
    rows = [
        {"model": "locost", "tokens": 16384, "status": "ok", "seconds": 2.0, "peak_mb": 100.0, "base_mb": 90.0},
        {"model": "dense-sdpa", "tokens": 16384, "status": "ok", "seconds": 3.0, "peak_mb": 1000.0, "base_mb": 80.0},
        {"model": "dense-eager", "tokens": 16384, "status": "oom"},
    ]
    text = "\n".join(ls.targets(rows, config))
    assert "reads 16K tokens under the 4.0 GiB cap: **yes**" in text
    assert "peak RSS 10 %" in text and "**met**" in text
    assert "dense-eager did not complete 16K (oom)" in text
    # 100 MiB against more than a 4 GiB cap: under 2 %, a bound the target can be judged by
    assert "under 2 % of what dense-eager needs (more than the 4.0 GiB cap; target <= 15 %: **met**)" in text


def test_a_point_runs_in_a_child_and_reports_its_peak_memory():
    config = ls.ScalingConfig(sizes=[64], models=("locost",), **TINY)
    row = ls.measure("locost", 64, config)
    assert row["status"] == "ok", row
    assert row["seconds"] > 0 and row["parameters"] > 0
    assert row["peak_mb"] >= row["base_mb"] > 50  # python + torch alone are more than 50 MiB


def test_a_point_past_the_memory_cap_is_reported_as_out_of_memory_and_stops_the_model(tmp_path, capsys):
    # dense-eager at 8K tokens wants 4 heads x 8K x 8K floats = 1 GiB of scores, over a 0.9 GiB cap.
    config = ls.ScalingConfig(sizes=[8192, 16384], models=("dense-eager",), out=str(tmp_path),
                              **{**TINY, "memory_limit_gb": 0.9})
    rows = ls.sweep(config, progress=False)
    assert rows[0]["status"] == "oom", rows[0]
    assert rows[1]["status"] == "skipped (oom)"
    path = ls.write_report(rows, config, "qfsum bench locost-scaling (test)")
    assert "| dense-eager | 8K | oom |" in path.read_text()
    assert json.loads(path.with_suffix(".json").read_text())["rows"] == rows
    assert path.with_suffix(".png").stat().st_size > 1000
