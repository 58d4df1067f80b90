"""The ONNX Runtime GenAI runtime of the generative writer: torch's greedy answers, grounded decoding
kept, a batch decoded together as each prompt alone, the conversion cached on disk. Tiny random
Llamas built in-process (two heads of 16: the CPU build's attention needs a head size that is a
multiple of 16); no downloaded weights (but the slow test at the end, on the shipped writer). The
suite's time is short: every test here is small."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from qfsum import QfsumError
from qfsum.writers import WriterConfig, build_writer
from runtime_cases import (ALL_QUERIES, ALL_RANKED, converted_cache,  # noqa: F401 - an autouse fixture
                           assert_damage_is_one_clear_error, assert_missing_package_is_one_line, invented,
                           random_llama, use_user_cache, writer)

RUNTIME = "onnxruntime-genai"
SOME = slice(None, None, 3)  # 8 of the 24 questions, every evidence set among them
QUERIES, RANKED = ALL_QUERIES[SOME], ALL_RANKED[SOME]


@pytest.fixture(autouse=True)
def fresh_models():
    """Each test starts with no model loaded."""
    if "qfsum.writers.ortgenai_runtime" in sys.modules:
        sys.modules["qfsum.writers.ortgenai_runtime"].load_ortgenai.cache_clear()
    yield


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> Path:
    """A tiny random Llama that onnxruntime-genai can run (the tests that need the package skip without it)."""
    pytest.importorskip("onnxruntime_genai", reason="onnxruntime-genai is not installed (pip install 'qfsum[fast]')")
    return random_llama(tmp_path_factory.mktemp("ort-llama"), 0, heads=2, kv_heads=1)


def small_llama(directory: Path, seed: int) -> Path:
    return random_llama(directory, seed, heads=2, kv_heads=1)


# -- configuration (no onnxruntime-genai needed) ------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "generative", "model": "smollm2", "runtime": RUNTIME, "dtype": "int8"}, r"dtype auto \(int4\), int4 or float32"),
    ({"kind": "extractive", "runtime": RUNTIME}, "runs the generative writer"),
])
def test_runtime_config_validation(kwargs, message):
    with pytest.raises(QfsumError, match=message):
        WriterConfig(**kwargs)


def test_missing_package_is_one_line_naming_the_extra(monkeypatch, tmp_path):
    assert_missing_package_is_one_line(monkeypatch, "onnxruntime_genai", lambda: writer(tmp_path, RUNTIME))


def test_missing_builder_dependency_is_one_line_naming_the_extra(monkeypatch, tmp_path, llama):
    """onnx and onnx-ir are the model builder's alone: missing, the first conversion stops with one line."""
    assert_missing_package_is_one_line(monkeypatch, "onnxruntime_genai.models.builder",
                                       lambda: writer(small_llama(tmp_path / "model", 8), RUNTIME))


def test_telemetry_is_off_before_the_package_loads(monkeypatch):
    """onnxruntime and onnxruntime-genai report usage to Microsoft unless this is set before they start."""
    from qfsum.writers.ortgenai_convert import require_ortgenai

    monkeypatch.delenv("ORT_DISABLE_TELEMETRY", raising=False)
    monkeypatch.setitem(sys.modules, "onnxruntime_genai", None)  # set even where the package is missing
    with pytest.raises(QfsumError):
        require_ortgenai()
    assert os.environ["ORT_DISABLE_TELEMETRY"] == "1"
    monkeypatch.setenv("ORT_DISABLE_TELEMETRY", "0")  # a user's own choice stands
    with pytest.raises(QfsumError):
        require_ortgenai()
    assert os.environ["ORT_DISABLE_TELEMETRY"] == "0"


# -- the same answers as torch -------------------------------------------------------------------------------


def test_fp32_gives_torch_greedy_tokens_for_raw_prompts(llama):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from qfsum.writers.fast_runtime import DecodeStats
    from qfsum.writers.ortgenai_runtime import load_ortgenai

    model = AutoModelForCausalLM.from_pretrained(llama, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(llama)
    ort = load_ortgenai(str(llama), "fp32")
    assert ort.threads == torch.get_num_threads() and ort.precision == "fp32"
    eos = tokenizer.sep_token_id
    for text in ["the budget was cut", "a", "the council met on 14 march"]:
        prompt = tokenizer(text)["input_ids"]
        with torch.inference_mode():
            out = model.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)[0, len(prompt):].tolist()
            reference = model(torch.tensor([prompt + out])).logits[0]
        expected = out[: out.index(eos) + 1] if eos in out else out
        stats = DecodeStats()
        assert ort.generate(prompt, 20, stats=stats) == expected, text
        assert stats.calls == 1 and stats.tokens == len(expected)
        assert torch.allclose(ort.logits(prompt + out), reference, atol=1e-3)  # teacher forcing: every position


@pytest.mark.parametrize("knobs", [
    {},  # the writer's defaults: the answer-only 3-gram ban
    {"grounded_numbers": True, "grounded_names": True, "evidence_bias": 1.0},
    {"grounded_numbers": True, "no_repeat_ngram_size": 2, "repetition_penalty": 1.3},
])
def test_fp32_writer_equals_the_torch_writer_streamed_too(llama, knobs):
    def answers(runtime: str) -> tuple[list[str], dict[int, str]]:
        pieces: dict[int, str] = {}
        drafts = writer(llama, runtime, **knobs).write_batch(
            QUERIES, RANKED, on_text=lambda i, text: pieces.__setitem__(i, pieces.get(i, "") + text))
        return [d.text for d in drafts], pieces

    assert answers(RUNTIME) == answers("torch")


# -- a batch decodes together, each row as it would alone ----------------------------------------------------


class EndAfter:
    """Forces the end-of-sequence token once the answer has `n` tokens: a row that ends before the others."""

    def __init__(self, n: int, prompt_length: int, eos: int) -> None:
        self.n, self.prompt_length, self.eos = n, prompt_length, eos

    def __call__(self, ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if ids.shape[1] - self.prompt_length < self.n:
            return scores
        forced = torch.full_like(scores, -torch.inf)
        forced[:, self.eos] = 0.0
        return forced


def batch_and_alone(model, prompts: list[list[int]], processors, max_new_tokens: int = 20):
    """(answers decoded together, tokens streamed per row, answers decoded one prompt at a time); fresh
    processors (`processors(row)`) for each decode."""
    from qfsum.writers.fast_runtime import DecodeStats

    streamed: dict[int, list[int]] = {row: [] for row in range(len(prompts))}
    stats = DecodeStats()
    together = model.generate_batch(prompts, max_new_tokens, [processors(row) for row in range(len(prompts))],
                                    lambda row, tokens: streamed[row].extend(tokens), stats)
    alone = [model.generate(prompt, max_new_tokens, processors(row)) for row, prompt in enumerate(prompts)]
    assert stats.tokens == sum(map(len, together))
    return together, [streamed[row] for row in range(len(prompts))], alone


def test_a_batch_decodes_as_each_prompt_alone_grounded_with_a_row_ending_early(llama):
    """fp32, prompts of different lengths (the writer's, and a one-token one), grounded decoding on (it
    bans invented numbers in rows 1 and 2 here), row 0 forced to end after 3 tokens: token for token what
    each prompt gets alone, streamed as chosen."""
    knobs = {"grounded_numbers": True, "grounded_names": True, "evidence_bias": 1.0}
    grounded = writer(llama, RUNTIME, **knobs)
    model, eos = grounded.model, grounded.model.eos[0]
    prompts = [grounded.prompt(q, r)[0] for q, r in zip(ALL_QUERIES[:3], ALL_RANKED[:3])] + [[model.tokenizer.cls_token_id]]
    assert len(set(map(len, prompts))) == len(prompts)

    def processors(row: int, base=grounded) -> list:
        ends = [EndAfter(3, len(prompts[row]), eos)] if row == 0 else []
        return base._processors(len(prompts[row])) + ends

    together, streamed, alone = batch_and_alone(model, prompts, processors)
    assert together == alone == streamed
    assert together[0][-1] == eos and len(together[0]) == 4
    assert all(len(answer) > 4 for answer in together[1:])  # the others went on
    free = writer(llama, RUNTIME, **{**knobs, "grounded_numbers": False, "grounded_names": False})
    ungrounded = model.generate_batch(prompts, 20, [processors(row, free) for row in range(len(prompts))])
    assert together != ungrounded, "grounded decoding must change an answer, or this test proves less"


def test_a_row_no_longer_wanted_ends_and_the_others_decode_as_alone(llama):
    """Row 1 stops being wanted once it has 3 tokens (a client gone mid-batch): it ends at the next step,
    the other rows are token for token what they get alone; a batch nobody wants ends at once."""
    grounded = writer(llama, RUNTIME, grounded_numbers=True)
    model = grounded.model
    prompts = [grounded.prompt(q, r)[0] for q, r in zip(ALL_QUERIES[:3], ALL_RANKED[:3])]
    streamed: dict[int, list[int]] = {row: [] for row in range(3)}
    together = model.generate_batch(prompts, 20, [grounded._processors(len(p)) for p in prompts],
                                    lambda row, tokens: streamed[row].extend(tokens),
                                    wanted=lambda row: row != 1 or len(streamed[1]) < 3)
    alone = [model.generate(p, 20, grounded._processors(len(p))) for p in prompts]
    assert together[0] == alone[0] and together[2] == alone[2] and len(alone[1]) > 4
    assert together[1] == alone[1][:3]
    nobody = model.generate_batch(prompts, 20, [grounded._processors(len(p)) for p in prompts], wanted=lambda row: False)
    assert [len(answer) for answer in nobody] == [1, 1, 1]


def test_a_prompt_ending_in_the_pad_token_decodes_alone(llama):
    """In a batch onnxruntime-genai reads trailing pad tokens as padding: such a prompt gets a generator
    of its own, so it is still answered as it would be alone."""
    from qfsum.writers.ortgenai_runtime import load_ortgenai

    model = load_ortgenai(str(llama), "fp32")
    ids = model.tokenizer("the budget was cut by 120,000 euros")["input_ids"]
    prompts = [ids, ids[:4] + [model.pad_token_id], ids[:6]]
    assert model._groups(prompts) == [[0, 2], [1]]
    together, streamed, alone = batch_and_alone(model, prompts, lambda row: [])
    assert together == alone == streamed


def test_writer_answers_do_not_depend_on_the_batch_size(llama):
    knobs = {"grounded_numbers": True, "no_repeat_ngram_size": 2, "repetition_penalty": 1.3}

    def answers(batch_size: int) -> tuple[list[str], dict[int, str]]:
        pieces: dict[int, str] = {}
        drafts = writer(llama, RUNTIME, batch_size=batch_size, **knobs).write_batch(
            QUERIES, RANKED, on_text=lambda i, text: pieces.__setitem__(i, pieces.get(i, "") + text))
        return [d.text for d in drafts], pieces

    assert answers(8) == answers(1)


# -- grounded decoding holds ---------------------------------------------------------------------------------


def test_grounded_int4_writer_never_writes_an_unstated_number(tmp_path, llama):
    queries, ranked = ALL_QUERIES[::2], ALL_RANKED[::2]  # 12 questions, every evidence set among them
    invented_free = 0
    for seed in (1, 2, 3):
        model_dir = small_llama(tmp_path / f"seed{seed}", seed)
        free = writer(model_dir, RUNTIME, "auto", no_repeat_ngram_size=0).write_batch(queries, ranked)
        invented_free += sum(bool(extra) for extra in invented([d.text for d in free], queries, ranked))
        grounded = writer(model_dir, RUNTIME, "auto", no_repeat_ngram_size=0,
                          grounded_numbers=True).write_batch(queries, ranked)
        assert not any(invented([d.text for d in grounded], queries, ranked)), f"seed {seed}"
    assert invented_free, "the random models must invent numbers, or this test proves nothing"


# -- the conversion cache -------------------------------------------------------------------------------------


def test_conversion_is_cached_reused_and_redone_for_new_weights(tmp_path, monkeypatch, llama):
    from qfsum.writers import ortgenai_convert

    model_dir = small_llama(tmp_path / "model", 5)
    first = ortgenai_convert.converted_model(str(model_dir), "int4")
    assert first.parent == ortgenai_convert.cache_dir() / "ortgenai" and first.name.endswith("-int4")
    assert not any(p.name.startswith(".") for p in first.parent.iterdir())  # no scratch left behind

    def no_second_conversion(*args, **kwargs):
        raise AssertionError("converted again")

    with monkeypatch.context() as patch:
        patch.setattr(ortgenai_convert, "_convert", no_second_conversion)
        assert ortgenai_convert.converted_model(str(model_dir), "int4") == first
        with pytest.raises(AssertionError, match="converted again"):  # another precision is another folder
            ortgenai_convert.converted_model(str(model_dir), "fp32")
    small_llama(model_dir, 6)  # retrained in place: new files, new sizes or times
    assert ortgenai_convert.converted_model(str(model_dir), "int4") != first


@pytest.mark.parametrize("damage", ["truncate", "marker"])
def test_a_corrupt_cache_is_one_clear_error(tmp_path, damage, llama):
    from qfsum.writers import ortgenai_convert

    model_dir = small_llama(tmp_path / "model", 4)
    folder = ortgenai_convert.converted_model(str(model_dir), "int4")
    assert_damage_is_one_clear_error(folder, damage, "model.onnx.data", ortgenai_convert.MARKER, lambda: writer(model_dir, RUNTIME, "int4"))


# -- what the runtime refuses ----------------------------------------------------------------------------------


def test_seq2seq_models_and_other_decodings_are_refused(tiny_seq2seq_dir, llama):
    with pytest.raises(QfsumError, match="causal LMs"):
        writer(tiny_seq2seq_dir, RUNTIME)
    with pytest.raises(QfsumError, match="decodes greedily"):
        writer(llama, RUNTIME, decoding="lookahead")
    with pytest.raises(QfsumError, match="decodes greedily"):
        writer(llama, RUNTIME, num_beams=2)


def test_a_head_size_the_cpu_kernel_cannot_run_is_one_line(tiny_causal_dir, llama):
    """The conftest's tiny Llama has heads of 8; the CPU attention kernel needs multiples of 16."""
    with pytest.raises(QfsumError, match="cannot run the model") as caught:
        writer(tiny_causal_dir, RUNTIME).write_batch(QUERIES[:1], RANKED[:1])
    assert "\n" not in str(caught.value)


# -- the shipped writer ---------------------------------------------------------------------------------------------

INT4_MIN_AGREEMENT = 0.6  # teacher-forced, against torch float32's 30 tokens; measured 0.80 (24 of 30) on this prompt, 2026-12-07


@pytest.mark.slow
def test_shipped_writer_int4_stays_close_to_torch(monkeypatch):
    """`default`'s writer on one question about examples/meeting.txt, a 30-token answer, its evidence
    ranked by BM25 (no encoder to load): int4, given torch float32's answer so far, picks torch's next
    token at least INT4_MIN_AGREEMENT of the time (answers drift apart after the first difference), and
    its own answer keeps to grounded decoding."""
    pytest.importorskip("onnxruntime_genai", reason="onnxruntime-genai is not installed (pip install 'qfsum[fast]')")
    from qfsum.bench.agreement import token_agreement
    from qfsum.grounding import numbers
    from qfsum.pipeline import Pipeline, load_config
    from qfsum.readers import document_from_text
    from qfsum.writers.grounded import Source

    use_user_cache(monkeypatch)
    settings = {**load_config("default").writer.__dict__, "max_new_tokens": 30}
    document = document_from_text((Path(__file__).resolve().parents[1] / "examples" / "meeting.txt").read_text(), "meeting")
    query = "What did the meeting decide about the budget overrun?"
    ranked = Pipeline.load("extractive-bm25").rank(document, query)
    torch_writer = build_writer(WriterConfig(**{**settings, "runtime": "torch", "dtype": "float32"}))
    int4 = build_writer(WriterConfig(**{**settings, "runtime": RUNTIME, "dtype": "auto"}))
    ids = torch_writer.prompt(query, ranked)[0]
    with torch.inference_mode():
        answer = torch_writer.model.generate(torch.tensor([ids]), max_new_tokens=30, do_sample=False,
                                             logits_processor=torch_writer._processors(len(ids)), no_repeat_ngram_size=0,
                                             pad_token_id=torch_writer.tokenizer.pad_token_id)[0, len(ids):].tolist()
    agreement = token_agreement(int4, [ids], [[t for t in answer if t not in int4.model.eos]])
    assert agreement >= INT4_MIN_AGREEMENT, agreement

    text = int4.write_batch([query], [ranked])[0].text
    # stated as grounded decoding reads the evidence (the whole prompt, the question included)
    stated = Source.of(int4.tokenizer.decode(ids, skip_special_tokens=True)).values
    assert text and set(numbers(text)) <= stated, text


# -- runtime auto: ONNX Runtime GenAI where it can, torch otherwise, the same answers ---------------------------


def test_auto_runtime_needs_float32():
    with pytest.raises(QfsumError, match="runtime auto runs the generative writer in float32"):
        WriterConfig(kind="generative", model="smollm2", runtime="auto", dtype="auto")
    with pytest.raises(QfsumError, match="runtime auto"):
        WriterConfig(kind="extractive", runtime="auto")


def test_auto_runtime_decodes_on_ortgenai_with_torch_answers(llama, caplog):
    auto = writer(llama, "auto", grounded_numbers=True)
    assert auto.runtime == RUNTIME and not caplog.records
    assert [d.text for d in auto.write_batch(QUERIES, RANKED)] == \
        [d.text for d in writer(llama, "torch", grounded_numbers=True).write_batch(QUERIES, RANKED)]


def test_auto_runtime_takes_torch_without_the_package_or_for_other_decodings(monkeypatch, llama, caplog):
    assert writer(llama, "auto", decoding="lookahead").runtime == "torch"
    assert writer(llama, "auto", num_beams=2).runtime == "torch"
    monkeypatch.setitem(sys.modules, "onnxruntime_genai", None)  # as if not installed
    assert writer(llama, "auto").runtime == "torch"
    assert not caplog.records  # nothing to warn about: torch gives the same answers


def test_auto_runtime_falls_back_to_torch_in_one_line_where_ortgenai_cannot_run_the_model(
        tiny_seq2seq_dir, tiny_causal_dir, llama, caplog):
    """The conftest's tiny Llama has heads of 8, which the CPU attention kernel cannot run: found at load
    time (one token), not on every request; seq2seq models the runtime does not take."""
    for model in (tiny_causal_dir, tiny_seq2seq_dir):
        caplog.clear()
        auto = writer(model, "auto")
        assert auto.runtime == "torch" and auto.write_batch(QUERIES[:1], RANKED[:1])[0].text is not None
        [record] = caplog.records
        assert record.levelname == "WARNING" and record.getMessage().startswith("decoding with torch instead: ")
        assert "\n" not in record.getMessage()
