"""`qfsum train locost` end to end on a tiny model, and the `locost` writer in a pipeline."""

from __future__ import annotations

import json

import pytest

from qfsum.cli import build_parser
from qfsum.errors import QfsumError
from qfsum.training.seq2seq import locost

MICRO = {"d_model": 32, "encoder_layers": 1, "decoder_layers": 1, "decoder_attention_heads": 2, "d_ff": 48,
         "state_size": 4, "dropout": 0.0, "max_decoder_positions": 64}
TEXT = ("The committee met on Monday. The library roof leaks in the reading room. Repairs to the roof cost "
        "forty thousand pounds. The council pays for the roof repairs. A study space opens in the town hall. "
        "The reading room closes in March. Members thanked the librarian. The meeting ended at noon.")


def _args(tmp_path, *extra: str):
    corpus = tmp_path / "corpus"
    corpus.mkdir(exist_ok=True)
    for i in range(3):
        (corpus / f"doc{i}.txt").write_text(TEXT)
    config = tmp_path / "micro.json"
    config.write_text(json.dumps(MICRO))
    argv = ["train", "locost", "--objective", "gsg", "--config", str(config), "--data", str(corpus),
            "--out", str(tmp_path / "model"), "--max-steps", "3", "--batch-size", "2", "--eval-steps", "3",
            "--save-steps", "2", "--val-limit", "1", "--beams", "2", "--max-new-tokens", "8", "--max-input", "256",
            "--no-progress", *extra]
    args = build_parser().parse_args(argv)
    args.argv = argv
    return args


@pytest.mark.slow
def test_gsg_training_writes_a_model_a_pipeline_and_a_card_and_the_writer_reads_it(tmp_path, capsys):
    args = _args(tmp_path)
    args.func(args)
    out = tmp_path / "model"
    assert "locost (gsg): 3 steps" in capsys.readouterr().out
    record = json.loads((out / "qfsum_training.json").read_text())
    assert record["status"] == "done" and record["config"]["arch"] == "locost" and record["history"]
    assert (tmp_path / "model-gsg" / "train.jsonl").exists() and (tmp_path / "model-gsg" / "val.jsonl").exists()
    pipeline = json.loads((out / "pipeline.json").read_text())
    assert pipeline["writer"]["kind"] == "locost" and pipeline["scorer"]["kind"] == "lead"
    assert "locost" in (out / "README.md").read_text().lower()

    args.func(args)  # the same command again: reported, not retrained
    assert "already trained" in capsys.readouterr().out

    from qfsum.writers.base import WriterConfig, build_writer
    from qfsum.readers import document_from_text
    from qfsum.segment import Segmenter
    from qfsum.document import Evidence

    writer = build_writer(WriterConfig(kind="locost", model=str(out), max_new_tokens=6, num_beams=1))
    assert writer.inputs.max_length == 65536 and writer.tokenizer.pad_token == "<|endoftext|>"
    segments = Segmenter()(document_from_text(TEXT))
    evidence = [Evidence(s, 1.0) for s in reversed(segments)]  # reversed: the writer restores document order
    draft = writer.write_batch(["What does the roof cost?"], [evidence])[0]
    assert isinstance(draft.text, str)
    assert [e.segment.start for e in draft.evidence] == sorted(e.segment.start for e in draft.evidence)


def test_tokenizer_appends_the_end_token_and_pads_with_endoftext():
    tokenizer = locost.locost_tokenizer()
    ids = tokenizer("hello world")["input_ids"]
    assert ids[-1] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert tokenizer.pad_token == "<|endoftext|>" and tokenizer.pad_token_id != ids[-1]
    assert tokenizer("hello", add_special_tokens=False)["input_ids"][-1] != ids[-1]


def test_model_config_from_presets_and_json(tmp_path):
    tokenizer = locost.locost_tokenizer()
    tiny = locost.model_config("tiny", tokenizer)
    assert (tiny.d_model, tiny.vocab_size, tiny.eos_token_id) == (128, len(tokenizer), tokenizer.convert_tokens_to_ids("<|im_end|>"))
    (tmp_path / "bad.json").write_text(json.dumps({"d_model": 30, "decoder_attention_heads": 4}))
    with pytest.raises(QfsumError, match="multiple of decoder_attention_heads"):
        locost.model_config(str(tmp_path / "bad.json"), tokenizer)
    with pytest.raises(QfsumError, match="neither a preset"):
        locost.model_config("huge", tokenizer)


def test_bad_options_are_one_line_errors(tmp_path):
    args = _args(tmp_path, "--gsg-ratio", "1.5")
    with pytest.raises(QfsumError, match="gsg-ratio"):
        locost.training_config(args)
    args = _args(tmp_path)
    args.config = "nope"
    with pytest.raises(QfsumError, match="neither a preset"):
        locost.training_config(args)


def test_summarize_objective_trains_on_query_focused_data_from_an_init(tmp_path, qmsum_root):
    init = tmp_path / "gsg-model"
    init.mkdir()
    args = _args(tmp_path, "--init", str(init))
    args.objective, args.data = "summarize", str(qmsum_root)
    config = locost.training_config(args)
    assert (config.arch, config.split, config.val_split) == ("locost", "train", "val")
    assert config.data == str(qmsum_root.resolve()) and config.init == str(init.resolve())
    with pytest.raises(QfsumError, match="not a saved model folder"):
        locost.load_locost(config)
