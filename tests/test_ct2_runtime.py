"""The CTranslate2 runtime of the generative writer: torch's greedy answers, grounded decoding kept,
the conversion cached on disk. Tiny random Llamas built in-process; no downloaded weights (but the
slow test at the end, on the shipped writer)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from qfsum import QfsumError
from qfsum.grounding import numbers
from qfsum.writers import WriterConfig, build_writer
from runtime_cases import (ALL_QUERIES, ALL_RANKED, EVIDENCE, USER_CACHE, converted_cache,  # noqa: F401 - an autouse fixture
                           assert_damage_is_one_clear_error, assert_missing_package_is_one_line,
                           invented, random_llama, writer)

needs_ct2 = pytest.mark.skipif(importlib.util.find_spec("ctranslate2") is None,
                               reason="ctranslate2 is not installed (pip install 'qfsum[fast]')")

@pytest.fixture(autouse=True)
def fresh_models():
    if "qfsum.writers.ct2_runtime" in sys.modules:
        sys.modules["qfsum.writers.ct2_runtime"].load_ct2.cache_clear()
    yield


# -- configuration (no ctranslate2 needed) -------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "generative", "model": "smollm2", "runtime": "onnx"}, "unknown writer runtime 'onnx'"),
    ({"kind": "generative", "model": "smollm2", "runtime": "ctranslate2", "dtype": "bfloat16"}, "dtype auto"),
    ({"kind": "extractive", "runtime": "ctranslate2"}, "runs the generative writer"),
])
def test_runtime_config_validation(kwargs, message):
    with pytest.raises(QfsumError, match=message):
        WriterConfig(**kwargs)


def test_missing_ctranslate2_is_one_line_naming_the_extra(monkeypatch, tiny_causal_dir):
    assert_missing_package_is_one_line(monkeypatch, "ctranslate2", lambda: writer(tiny_causal_dir, "ctranslate2"))


# -- the same answers as torch ---------------------------------------------------------------------------


@needs_ct2
def test_float32_gives_torch_greedy_tokens_for_raw_prompts(tiny_causal_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from qfsum.writers.ct2_runtime import Ct2Stats, load_ct2

    model = AutoModelForCausalLM.from_pretrained(tiny_causal_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_dir)
    ct2 = load_ct2(str(tiny_causal_dir), "float32")
    eos = tokenizer.sep_token_id
    for text in ["the budget was cut", "who paid for the roof and when", "a", "the council met on 14 march"] + EVIDENCE[1]:
        prompt = tokenizer(text)["input_ids"]
        with torch.inference_mode():
            out = model.generate(torch.tensor([prompt]), max_new_tokens=30, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)[0, len(prompt):].tolist()
        expected = out[: out.index(eos) + 1] if eos in out else out
        stats = Ct2Stats()
        assert ct2.generate(prompt, 30, stats=stats) == expected, text
        assert stats.calls == 1 and stats.restarts == 0  # no processors: CTranslate2 alone decides


@needs_ct2
@pytest.mark.parametrize("knobs", [
    {},  # the writer's defaults: the answer-only 3-gram ban
    {"grounded_numbers": True, "grounded_names": True},
    {"grounded_numbers": True, "no_repeat_ngram_size": 2, "repetition_penalty": 1.3},
])
def test_float32_writer_equals_the_torch_writer(tiny_causal_dir, knobs):
    from qfsum.writers.ct2_runtime import Ct2Stats

    torch_texts = [d.text for d in writer(tiny_causal_dir, "torch", **knobs).write_batch(ALL_QUERIES, ALL_RANKED)]
    ct2_writer = writer(tiny_causal_dir, "ctranslate2", **knobs)
    stats = Ct2Stats()
    generate = ct2_writer.model.generate
    ct2_writer.model.generate = lambda *args, **kw: generate(*args, **kw, stats=stats)
    assert [d.text for d in ct2_writer.write_batch(ALL_QUERIES, ALL_RANKED)] == torch_texts
    if knobs:  # the processors overruled CTranslate2 and decoding resumed: that path is checked too
        assert stats.restarts > 0
    else:  # an answer-only n-gram ban is CTranslate2's own until a restart: it needs none
        assert stats.restarts == 0 and stats.calls == len(ALL_QUERIES)


@needs_ct2
def test_streamed_text_is_the_torch_writers(tiny_causal_dir):
    def streamed(runtime: str) -> dict[int, str]:
        pieces: dict[int, str] = {}
        writer(tiny_causal_dir, runtime, grounded_numbers=True).write_batch(
            ALL_QUERIES[:5], ALL_RANKED[:5], on_text=lambda i, text: pieces.__setitem__(i, pieces.get(i, "") + text))
        return pieces

    assert streamed("ctranslate2") == streamed("torch")


@needs_ct2
def test_an_answer_no_longer_wanted_is_not_started(tiny_causal_dir):
    """CTranslate2 decodes a batch one prompt at a time: an answer nobody waits for is skipped."""
    fast = writer(tiny_causal_dir, "ctranslate2")
    everything = [d.text for d in fast.write_batch(ALL_QUERIES[:3], ALL_RANKED[:3])]
    asked = []
    partial = [d.text for d in fast.write_batch(ALL_QUERIES[:3], ALL_RANKED[:3],
                                                wanted=lambda i: asked.append(i) or i != 1)]
    assert partial == [everything[0], "", everything[2]] and everything[1]
    assert set(asked) == {0, 1, 2}


# -- grounded decoding holds ---------------------------------------------------------------------------------


@needs_ct2
@pytest.mark.parametrize("dtype, seeds", [("auto", range(1, 5)), ("float32", range(5, 7))])  # int8 weights, and float32
def test_grounded_ct2_writer_never_writes_an_unstated_number(tmp_path, dtype, seeds):
    invented_free = 0
    for seed in seeds:
        model_dir = random_llama(tmp_path / f"seed{seed}", seed)
        free = writer(model_dir, "ctranslate2", dtype, no_repeat_ngram_size=0).write_batch(ALL_QUERIES, ALL_RANKED)
        invented_free += sum(bool(extra) for extra in invented([d.text for d in free]))
        grounded = writer(model_dir, "ctranslate2", dtype, no_repeat_ngram_size=0,
                          grounded_numbers=True).write_batch(ALL_QUERIES, ALL_RANKED)
        assert not any(invented([d.text for d in grounded])), f"seed {seed}"
    assert invented_free, "the random models must invent numbers, or this test proves nothing"


# -- the conversion cache -------------------------------------------------------------------------------------


@needs_ct2
def test_conversion_is_cached_and_reused(tmp_path, monkeypatch):
    from qfsum.writers import ct2_convert

    model_dir = random_llama(tmp_path / "model", 5)
    first = ct2_convert.converted_model(str(model_dir), "int8")
    assert first.parent.parent == Path(ct2_convert.cache_dir()) and first.name.endswith("-int8")

    def no_second_conversion(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(ct2_convert, "_convert", no_second_conversion)
    assert ct2_convert.converted_model(str(model_dir), "int8") == first
    with pytest.raises(AssertionError, match="converted again"):  # another quantization is another folder
        ct2_convert.converted_model(str(model_dir), "float32")
    assert not any(p.name.startswith(".converting-") for p in first.parent.iterdir())  # no scratch left behind


@needs_ct2
def test_changed_weights_convert_again(tmp_path):
    from qfsum.writers import ct2_convert

    model_dir = random_llama(tmp_path / "model", 7)
    first = ct2_convert.converted_model(str(model_dir), "int8")
    random_llama(model_dir, 8)  # retrained in place: new files, new sizes or times
    assert ct2_convert.converted_model(str(model_dir), "int8") != first


@needs_ct2
@pytest.mark.parametrize("damage", ["truncate", "marker"])
def test_a_corrupt_cache_is_one_clear_error(tmp_path, damage):
    from qfsum.writers import ct2_convert

    model_dir = random_llama(tmp_path / "model", 3)
    folder = ct2_convert.converted_model(str(model_dir), "int8")
    assert_damage_is_one_clear_error(folder, damage, "model.bin", ct2_convert.MARKER, lambda: writer(model_dir, "ctranslate2", "int8"))


# -- what the runtime refuses ----------------------------------------------------------------------------------


@needs_ct2
def test_seq2seq_models_and_other_decodings_are_refused(tiny_seq2seq_dir, tiny_causal_dir):
    with pytest.raises(QfsumError, match="causal LMs"):
        writer(tiny_seq2seq_dir, "ctranslate2")
    with pytest.raises(QfsumError, match="decodes greedily"):
        writer(tiny_causal_dir, "ctranslate2", decoding="lookahead")
    with pytest.raises(QfsumError, match="decodes greedily"):
        writer(tiny_causal_dir, "ctranslate2", num_beams=2)


# -- prompt states and the benchmark ----------------------------------------------------------------------------


@needs_ct2
def test_cached_prompt_states_stay_bounded(tiny_causal_dir):
    """CTranslate2 never evicts a cached prompt; the runtime reloads its generator instead, without
    changing a single token."""
    from transformers import AutoTokenizer

    from qfsum.writers.ct2_runtime import MAX_PROMPT_STATES, load_ct2

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_dir)
    ct2 = load_ct2(str(tiny_causal_dir), "float32")
    keep = [lambda ids, scores: scores]  # a processor: the prompt's state is cached, as under grounding
    prompts = [tokenizer(text)["input_ids"] for text in EVIDENCE[0] + EVIDENCE[1]]
    loads = []
    load = ct2._load
    ct2._load = lambda: loads.append(1) or load()
    for prompt in prompts + prompts[-1:]:  # the last prompt twice: its state is still cached
        assert ct2.generate(prompt, 12, keep) == ct2.generate(prompt, 12)
        assert len(ct2._cached) <= MAX_PROMPT_STATES
    assert len(loads) == max(len(prompts) - MAX_PROMPT_STATES, 0)  # a reload per new prompt beyond the bound


@needs_ct2
def test_runtimes_benchmark_runs_end_to_end(tmp_path, tiny_causal_dir):
    """benchmarks/runtimes.py on the tiny model (torch fp32 as the reference, CTranslate2 float32):
    its table, and CTranslate2 float32 writing the reference's answers."""
    import json
    import subprocess

    pipeline = tmp_path / "pipeline.json"
    pipeline.write_text(json.dumps({"name": "tiny", "segmenter": {"kind": "turn"}, "scorer": {"kind": "bm25"},
                                    "writer": {"kind": "generative", "model": str(tiny_causal_dir), "max_new_tokens": 16,
                                               "grounded_numbers": True}}))
    document = tmp_path / "notes.txt"
    document.write_text("\n\n".join(" ".join(e) for e in EVIDENCE))
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "runtimes.py"
    result = subprocess.run([sys.executable, str(script), "--data", str(document), "--limit", "2", "--pipeline",
                             str(pipeline), "--variants", "ct2-fp32", "--threads", "1", "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "| torch | float32 |" in result.stdout and "| ctranslate2 | float32 |" in result.stdout
    rows = {r["variant"]: r for r in json.loads((tmp_path / "out" / "runtimes.json").read_text())["rows"]}
    assert rows["ct2-fp32"]["identical"] == 1.0 and rows["ct2-fp32"]["token_agreement"] == 1.0
    assert rows["ct2-fp32"]["texts"] == rows["torch-fp32"]["texts"]


# -- the shipped writer ---------------------------------------------------------------------------------------------

INT8_MIN_AGREEMENT = 0.8  # teacher-forced; measured 0.87-0.94 on these questions (2026-12-07, docs/writers.md)


@needs_ct2
@pytest.mark.slow
def test_shipped_writer_float32_is_torch_and_int8_stays_close(monkeypatch):
    """`default`'s writer on its evidence for examples/meeting.txt: CTranslate2 float32 writes torch
    float32's answers; int8, given torch's answer so far, picks torch's next token at least
    INT8_MIN_AGREEMENT of the time (its answers drift apart after the first difference), and grounded
    decoding still holds."""
    from qfsum import Pipeline
    from qfsum.bench.agreement import token_agreement
    from qfsum.readers import document_from_text
    from qfsum.writers.grounded import Source

    if USER_CACHE is None:  # converted once into ~/.cache/qfsum, not per test session
        monkeypatch.delenv("QFSUM_CACHE")
    else:
        monkeypatch.setenv("QFSUM_CACHE", USER_CACHE)
    root = Path(__file__).resolve().parents[1]
    pipeline = Pipeline.load("default")
    document = document_from_text((root / "examples" / "meeting.txt").read_text(), "meeting")
    queries = ["What did the meeting decide about the budget overrun?"]  # one question: the suite's time
    ranked = [pipeline.rank(document, q) for q in queries]
    settings = {**pipeline.config.writer.__dict__, "max_new_tokens": 60}  # answers of 60 tokens: the suite's time
    writers = {(runtime, dtype): build_writer(WriterConfig(**{**settings, "runtime": runtime, "dtype": dtype}))
               for runtime, dtype in [("torch", "float32"), ("ctranslate2", "float32"), ("ctranslate2", "int8")]}
    torch_writer, int8 = writers["torch", "float32"], writers["ctranslate2", "int8"]
    answers = {key: [d.text for d in w.write_batch(queries, ranked)] for key, w in writers.items()}
    assert answers["ctranslate2", "float32"] == answers["torch", "float32"]

    prompts, reference = [], []
    for query, evidence in zip(queries, ranked):
        ids = torch_writer.prompt(query, evidence)[0]
        with torch.inference_mode():
            answer = torch_writer.model.generate(torch.tensor([ids]), max_new_tokens=60, do_sample=False,
                                                 logits_processor=torch_writer._processors(len(ids)), no_repeat_ngram_size=0,
                                                 pad_token_id=torch_writer.tokenizer.pad_token_id)[0, len(ids):].tolist()
        prompts.append(ids)
        reference.append([t for t in answer if t not in int8.model.eos])
    agreement = token_agreement(int8, prompts, reference)
    assert agreement >= INT8_MIN_AGREEMENT, agreement

    for text, query, evidence in zip(answers["ctranslate2", "int8"], queries, ranked):
        # stated as grounded decoding reads the evidence (the whole prompt, the question included)
        stated = Source.of(int8.tokenizer.decode(int8.prompt(query, evidence)[0], skip_special_tokens=True)).values
        assert set(numbers(text)) <= stated, text
