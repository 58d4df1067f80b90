"""`qfsum bench writers`, the writer bake-off, on two tiny random in-process models and a tiny
QMSum-like data set written by the test (conftest's `qmsum_root`). The evidence comes from a
pipeline of the test's own (turns ranked by BM25), so no packaged model loads."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import assert_one_error_line, cli

from qfsum.bench import writers
from qfsum.errors import QfsumError


@pytest.fixture
def bm25_pipeline(tmp_path: Path) -> Path:
    """A pipeline folder whose segmenter and scorer need no model: speaker turns ranked by BM25."""
    folder = tmp_path / "bm25-pipeline"
    folder.mkdir()
    (folder / "pipeline.json").write_text(json.dumps({
        "name": "bm25-turns", "segmenter": {"kind": "turn"}, "scorer": {"kind": "bm25"},
        "writer": {"kind": "extractive"}}))
    return folder


def config_for(qmsum_root, bm25_pipeline, tmp_path, candidates, **fields) -> writers.WritersBenchConfig:
    return writers.WritersBenchConfig(candidates=tuple(str(c) for c in candidates), data=str(qmsum_root), limit=2,
                                      pipeline=str(bm25_pipeline), evidence_tokens=64, max_prompt=512,
                                      max_new_tokens=8, dtype="float32", threads=1, out=str(tmp_path / "bench"),
                                      **fields)


def check_row(row: dict, candidate: str, variant: str) -> None:
    assert row["candidate"] == candidate and row["variant"] == variant and row["n"] == 2
    for key in ("rouge1", "rouge2", "rougeLsum"):
        assert 0 <= row[key] <= 100
    assert 0 < row["prompt_tokens"] <= 512
    assert row["prefill_tokens_per_s"] > 0 and row["seconds_per_answer"] > 0
    assert row["decode_tokens_per_s"] is None or row["decode_tokens_per_s"] > 0
    for key in ("number_precision", "name_precision", "supported_sentences"):
        assert math.isnan(row[key]) or 0 <= row[key] <= 1
    assert row["threads"] == 1 and row["dtype"] == "float32"


def table_rows(markdown: str) -> list[list[str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_one_row_per_candidate_in_process(qmsum_root, bm25_pipeline, tmp_path, tiny_causal_dir, tiny_bytes_dir):
    config = config_for(qmsum_root, bm25_pipeline, tmp_path, [tiny_causal_dir, tiny_bytes_dir], isolate=False)
    result = writers.run_bench(config, progress=False)
    assert [r["candidate"] for r in result["rows"]] == [str(tiny_causal_dir), str(tiny_bytes_dir)]
    for row, candidate in zip(result["rows"], (tiny_causal_dir, tiny_bytes_dir)):
        check_row(row, str(candidate), "zero-shot")
        assert row["peak_rss_mb"] is None  # not measured in-process
    # the byte tokenizer spends more tokens on the same evidence: the prompts are the same text, not the same ids
    assert result["rows"][1]["prompt_tokens"] > result["rows"][0]["prompt_tokens"]
    out = Path(config.out)
    table = table_rows((out / writers.TABLE_FILE).read_text())
    header, rows = table[0], table[2:]
    assert header == [h for h, _, _ in writers.COLUMNS]
    assert len(rows) == 2 and all(len(r) == len(header) for r in rows)
    assert rows[0][header.index("peak RSS MB")] == "-"
    prompts = [json.loads(line) for line in (out / writers.PROMPTS_FILE).read_text().splitlines()]
    assert len(prompts) == 2 and all(p["evidence"] and p["references"] for p in prompts)
    for p in prompts:  # evidence is verbatim from the document
        assert all(e.split(": ", 1)[-1][:20] in p["document"] for e in p["evidence"])
    predictions = (out / f"{writers._slug(str(tiny_causal_dir))}-zero-shot" / "predictions.jsonl").read_text()
    assert len(predictions.splitlines()) == 2


def test_greedy_timed_equals_generate(tiny_causal_dir):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_causal_dir).eval()
    prompt = [101, 2054, 2106, 1996, 2177, 5630, 102]
    new, prefill, decode = writers.greedy_timed(model, prompt, 6, eos=set())
    with torch.inference_mode():
        reference = model.generate(torch.tensor([prompt]), max_new_tokens=6, do_sample=False, min_new_tokens=6,
                                   pad_token_id=0, eos_token_id=None)
    assert new == reference[0, len(prompt):].tolist()
    assert prefill > 0 and decode > 0
    stop = reference[0, len(prompt) + 2].item()  # stopping at a token: the tokens before it, not it
    assert writers.greedy_timed(model, prompt, 6, eos={stop})[0] == reference[0, len(prompt):len(prompt) + 2].tolist()


def test_a_candidate_in_its_own_process_reports_peak_memory(qmsum_root, bm25_pipeline, tmp_path, tiny_causal_dir,
                                                             capsys):
    code, out, err = cli(capsys, "bench", "writers", "--candidates", str(tiny_causal_dir),
                         "--data", qmsum_root, "--limit", "2", "--pipeline", bm25_pipeline, "--evidence-tokens", "64",
                         "--max-prompt", "512", "--max-new-tokens", "8", "--dtype", "float32", "--threads", "1",
                         "--out", tmp_path / "bench", "--no-progress")
    assert code == 0, err
    result = json.loads((tmp_path / "bench" / writers.RESULT_FILE).read_text())
    [row] = result["rows"]
    check_row(row, str(tiny_causal_dir), "zero-shot")
    assert 50 < row["peak_rss_mb"] < 20_000  # a Python process with torch: tens to thousands of MB
    header, _, *rows = table_rows(out)
    assert len(rows) == 1 and rows[0][0] == str(tiny_causal_dir)
    assert float(rows[0][header.index("peak RSS MB")]) == pytest.approx(row["peak_rss_mb"], abs=1)


@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "own-process"])
def test_sft_adds_a_row_after_training(qmsum_root, bm25_pipeline, tmp_path, tiny_bytes_dir, isolate):
    # own-process is what `qfsum bench writers` does: its job files must not land in the training folder
    config = config_for(qmsum_root, bm25_pipeline, tmp_path, [tiny_bytes_dir], isolate=isolate, sft_steps=1,
                        sft_batch_size=1)
    result = writers.run_bench(config, progress=False)
    assert [r["variant"] for r in result["rows"]] == ["zero-shot", "sft 1 steps"]
    check_row(result["rows"][1], str(tiny_bytes_dir), "sft 1 steps")
    assert result["rows"][1]["model"].endswith("-sft1-adapter")
    adapter = Path(config.out) / f"{writers._slug(str(tiny_bytes_dir))}-sft1-adapter"
    assert (adapter / "adapter_config.json").exists()
    record = json.loads((adapter / "qfsum_training.json").read_text())
    assert record["step"] == 1 and record["status"] == "done" and record["kind"] == "sft"
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_bytes_dir)


def test_a_candidate_that_cannot_load_is_one_line(qmsum_root, bm25_pipeline, tmp_path, capsys):
    code, _, err = cli(capsys, "bench", "writers", "--candidates", str(tmp_path / "nowhere"), "--data", qmsum_root,
                       "--limit", "1", "--pipeline", bm25_pipeline, "--out", tmp_path / "bench", "--no-progress")
    line = assert_one_error_line(code, err)
    assert "nowhere" in line


@pytest.mark.parametrize("fields", [{"candidates": ()}, {"candidates": ("a", " ")}, {"limit": 0}, {"sft_steps": -1},
                                    {"evidence_tokens": 0}, {"sft_lr": float("nan")}])
def test_bad_settings_are_refused(fields):
    settings = {"candidates": ("a",), "data": "d", **fields}
    with pytest.raises(QfsumError):
        writers.WritersBenchConfig(**settings)
