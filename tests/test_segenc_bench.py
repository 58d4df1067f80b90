"""`qfsum bench segenc` at toy sizes: the points it measures and the report it writes."""

from __future__ import annotations

import json

import pytest

from qfsum import QfsumError
from qfsum.bench.segenc_scaling import SegEncBenchConfig, encoder_input, measure, run_point, write_report

TOY = dict(sizes=[300, 900], segment_length=64, layers=1, width=32, heads=2, ffn=64, vocab_size=500)


def test_encoders_read_the_same_document_their_own_way():
    config = SegEncBenchConfig(**TOY)
    full_ids, full_mask = encoder_input("full", 300, config)
    window_ids, window_mask = encoder_input("segenc", 300, config)
    assert full_ids.shape == (1, 300 + 16 + 4)  # <s> query </s></s> document </s>
    assert window_ids.shape[1] % 64 == 0 and window_ids.shape[1] > 300  # whole windows, overlapping
    assert int(window_mask.sum()) > 300 and int(full_mask.sum()) == full_ids.shape[1]


@pytest.mark.parametrize("name", ["segenc", "full"])
def test_a_point_reports_time_and_memory(name):
    row = run_point(name, 300, SegEncBenchConfig(**TOY, device="cpu"))
    assert row["status"] == "ok" and row["seconds"] > 0 and row["peak_mb"] >= row["base_mb"] > 0


def test_a_child_process_measures_a_point_and_the_report_is_written(tmp_path):
    config = SegEncBenchConfig(**TOY, device="cpu", out=str(tmp_path))
    row = {"encoder": "segenc", "tokens": 300, **measure("segenc", 300, config)}
    assert row["status"] == "ok", row
    rows = [row, {"encoder": "full", "tokens": 300, "status": "time limit"}]
    path = write_report(rows, config, "qfsum bench segenc --sizes 300")
    table = path.read_text()
    assert "| segenc | 300 |" in table and "| full | 300 | - | time limit | - | - | - |" in table
    assert json.loads((tmp_path / "segenc_scaling.json").read_text())["rows"] == rows
    assert (tmp_path / "segenc_scaling.png").stat().st_size > 0


def test_bad_options_are_user_errors():
    with pytest.raises(QfsumError, match="unknown encoder"):
        SegEncBenchConfig(encoders=("rnn",))
    with pytest.raises(QfsumError, match="multiple of --heads"):
        SegEncBenchConfig(width=30, heads=4)
