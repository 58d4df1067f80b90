"""The seq2seq trainer: the loss falls, resuming continues from the saved step, the output is a
pipeline, runs are reported or refused; `qfsum train seq2seq`. Tiny random BART, synthetic meetings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from qfsum import Pipeline, QfsumError
from qfsum.readers import read_examples
from qfsum.training.seq2seq.train import (
    Seq2SeqCollator,
    Seq2SeqTrainingConfig,
    encode_examples,
    load_model,
    shift_right,
    train_seq2seq,
)

from conftest import assert_one_error_line, cli, write_qmsum
from test_extractor_training import _Interrupt, _Steps  # step-counting and interrupting callbacks


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return write_qmsum(tmp_path_factory.mktemp("seq2seq-data"))


def _config(data_root: Path, base: Path, out: Path, **overrides) -> Seq2SeqTrainingConfig:
    """Train on the 5 'val' examples, validate on 'test': windows of 48 tokens, a few steps."""
    options = dict(arch="segenc", base=str(base), data=str(data_root), out=str(out), split="val", val_split="test",
                   segment_length=48, max_input=300, max_target=32, epochs=1, max_steps=6, lr=1e-3,
                   label_smoothing=0.0, log_steps=1, eval_steps=3, save_steps=3, num_beams=2, max_new_tokens=8)
    return Seq2SeqTrainingConfig(**{**options, **overrides})


def _mean_loss(model, config: Seq2SeqTrainingConfig, tokenizer, inputs) -> float:
    """The model's mean teacher-forced loss on the training examples."""
    examples = [e for e in read_examples(config.data, config.split) if e.references]
    collate = Seq2SeqCollator(inputs, shift_right(model))
    features = encode_examples(examples, inputs, tokenizer, config.max_target)
    model.eval()
    with torch.no_grad():
        return sum(float(model(**collate([f])).loss) for f in features) / len(features)


@pytest.fixture(scope="module")
def trained(data_root, tiny_seq2seq_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "segenc"
    config = _config(data_root, tiny_seq2seq_dir, out, grad_accum=2, grad_checkpointing=True, max_steps=8, eval_steps=4, lr=1e-2)
    return config, train_seq2seq(config, progress=False, command="qfsum train seq2seq ...")


def test_training_lowers_the_loss(trained):
    config, run = trained
    start = load_model(config)  # the untrained SegEnc around the same backbone
    before = _mean_loss(start.model, config, start.tokenizer, start.inputs)
    model = AutoModelForSeq2SeqLM.from_pretrained(config.out)
    after = _mean_loss(model, config, AutoTokenizer.from_pretrained(config.out), start.inputs)
    assert after < before - 1.0, (before, after)
    assert run["step"] == 8 and [h["step"] for h in run["history"]] == [4, 8]


def test_the_output_is_a_model_a_pipeline_and_a_card(trained):
    config, run = trained
    out = Path(config.out)
    assert {"config.json", "model.safetensors", "tokenizer.json", "pipeline.json", "README.md", "qfsum_training.json"} <= {
        p.name for p in out.iterdir()}
    assert not (out / "checkpoints").exists() and not (out / "best").exists()
    best = max(run["history"], key=lambda h: h["rouge_mean"])
    assert run["best"]["step"] == best["step"]
    assert set(run["best"]) >= {"rouge1", "rouge2", "rougeL", "rougeLsum", "rouge_mean"}
    card = (out / "README.md").read_text()
    assert "qfsum train seq2seq ..." in card and f"| {best['step']} (kept) |" in card
    summary = Pipeline.load(out).summarize("Ann: The budget is twelve euros.\nBob: Rubber is cheap.", "What about the budget?")
    assert summary.text and len(summary.evidence) == 2


def test_a_finished_run_is_reported_and_another_refused(trained, tmp_path):
    config, run = trained
    again = train_seq2seq(config, progress=False)
    assert again["reported"] and again["step"] == run["step"]
    with pytest.raises(QfsumError, match="holds another training run"):
        train_seq2seq(Seq2SeqTrainingConfig(**{**config.__dict__, "lr": 5e-4}), progress=False)
    (tmp_path / "notes.txt").write_text("not a run")
    with pytest.raises(QfsumError, match="is not empty"):
        train_seq2seq(Seq2SeqTrainingConfig(**{**config.__dict__, "out": str(tmp_path)}), progress=False)


def test_resume_continues_from_the_saved_step(data_root, tiny_seq2seq_dir, tmp_path):
    from safetensors.torch import load_file

    def config(out: str) -> Seq2SeqTrainingConfig:
        return _config(data_root, tiny_seq2seq_dir, tmp_path / out, val_split=None, arch="plain", max_steps=4, save_steps=2)

    whole = train_seq2seq(config("whole"), progress=False)
    with pytest.raises(KeyboardInterrupt):
        train_seq2seq(config("cut"), progress=False, callbacks=[_Interrupt(at=3)])
    state = json.loads((tmp_path / "cut" / "qfsum_training.json").read_text())
    assert state["status"] == "training" and state["step"] == 2
    assert [p.name for p in (tmp_path / "cut" / "checkpoints").iterdir()] == ["checkpoint-2"]

    steps = _Steps()
    resumed = train_seq2seq(config("cut"), progress=False, callbacks=[steps])
    assert steps.steps[0] == 3 and resumed["step"] == whole["step"] == 4 and resumed["sessions"] == 2
    assert [r["loss"] for r in resumed["train_loss"]] == pytest.approx([r["loss"] for r in whole["train_loss"]])
    a, b = load_file(tmp_path / "whole" / "model.safetensors"), load_file(tmp_path / "cut" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k]) for k in a)  # the same model as an uninterrupted run


def test_collator_pads_labels_and_shifts_them_right(tiny_seq2seq_dir):
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_seq2seq_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_seq2seq_dir)
    from qfsum.models.seq2seq_inputs import TruncatedInputs

    collate = Seq2SeqCollator(TruncatedInputs(tokenizer, 64), shift_right(model))
    batch = collate([{"input_ids": [101, 5, 102], "labels": [7, 8, 102]}, {"input_ids": [101, 102], "labels": [9, 102]}])
    start = model.config.decoder_start_token_id
    assert batch["labels"].tolist() == [[7, 8, 102], [9, 102, -100]]
    assert batch["decoder_input_ids"].tolist() == [[start, 7, 8], [start, 9, 102]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"arch": "rnn"}, "unknown architecture"),
        ({"label_smoothing": 1.5}, "label smoothing"),
        ({"grad_accum": 0}, "grad accum must be >= 1"),
        ({"segment_length": 4}, "segment length"),
    ],
)
def test_config_errors(data_root, tiny_seq2seq_dir, tmp_path, overrides, message):
    with pytest.raises(QfsumError, match=message):
        _config(data_root, tiny_seq2seq_dir, tmp_path / "x", **overrides)


def test_cli_trains_then_evaluates(capsys, data_root, tiny_seq2seq_dir, tmp_path):
    out = tmp_path / "cli-run"
    code, stdout, err = cli(capsys, "train", "seq2seq", "--arch", "segenc", "--base", tiny_seq2seq_dir, "--data", data_root,
                            "--split", "val", "--val-split", "test", "--out", out, "--max-steps", "2", "--segment-length",
                            "48", "--max-new-tokens", "6", "--beams", "2", "--lr", "1e-3", "--no-progress")
    assert code == 0, err
    assert "segenc: 2 steps on 5 examples" in stdout and "best on validation (step 2)" in stdout
    record = json.loads((out / "qfsum_training.json").read_text())
    assert record["command"].startswith("qfsum train seq2seq --arch segenc")
    code, stdout, err = cli(capsys, "evaluate", "--data", data_root, "--split", "test", "--pipeline", out,
                            "--out", tmp_path / "eval", "--no-progress")
    assert code == 0, err
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["n"] == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--arch", "rnn"], "unknown architecture"),
        (["--arch", "led"], "needs an LED model"),
        (["--arch", "plain", "--init", "no/such/dir/x"], "unknown model"),
    ],
)
def test_cli_user_errors(capsys, data_root, tiny_seq2seq_dir, tmp_path, extra, message):
    code, _, err = cli(capsys, "train", "seq2seq", "--base", tiny_seq2seq_dir, "--data", data_root, "--split", "val",
                       "--val-split", "test", "--out", tmp_path / "bad", "--max-steps", "1", "--no-progress", *extra)
    assert message in assert_one_error_line(code, err)


def test_init_starts_from_a_fine_tuned_checkpoint(trained, tmp_path):
    from safetensors.torch import load_file

    config, _ = trained
    transfer = Seq2SeqTrainingConfig(**{**config.__dict__, "out": str(tmp_path / "transfer"), "init": config.out,
                                        "segment_length": 64})
    loaded = load_model(transfer)
    saved = load_file(Path(config.out) / "model.safetensors")
    state = loaded.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in saved.items())  # the fine-tuned weights, not the base's
    assert loaded.model.config.segment_length == loaded.inputs.segment_length == 64  # this run's windows


def test_led_trains_with_global_attention_on_the_query(data_root, tiny_led_dir, tmp_path):
    config = _config(data_root, tiny_led_dir, tmp_path / "led", arch="led", val_split=None, max_steps=2, max_input=200)
    loaded = load_model(config)
    assert loaded.inputs.global_query and loaded.inputs.max_length == 200
    run = train_seq2seq(config, progress=False)
    assert run["step"] == 2 and run["writer"] == "led"
    pipeline = json.loads((tmp_path / "led" / "pipeline.json").read_text())
    assert pipeline["writer"]["kind"] == "led" and pipeline["scorer"]["kind"] == "lead"
    assert Pipeline.load(tmp_path / "led").summarize("Ann: The budget is twelve euros.", "What about the budget?").text
