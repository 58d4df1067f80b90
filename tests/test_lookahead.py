"""Lookahead decoding gives greedy decoding's output, token for token, alone and in batches."""

from __future__ import annotations

import random

import pytest
import torch

from qfsum.errors import QfsumError
from qfsum.writers.lookahead import DecodeStats, Drafter, LookaheadConfig, lookahead_generate

EOS, PAD = 2, 0


@pytest.fixture(scope="module")
def model():
    """A random 2-layer Llama over 64 tokens: small enough to loop and copy, so drafts get accepted."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=1, eos_token_id=EOS, pad_token_id=PAD, tie_word_embeddings=True,
                         initializer_range=0.5)
    return LlamaForCausalLM(config).eval()


def _prompts(count: int, seed: int = 0) -> list[list[int]]:
    """Repetitive prompts of varied lengths (a short motif repeated, with a ragged end)."""
    rng = random.Random(seed)
    prompts = []
    for _ in range(count):
        motif = [rng.randrange(3, 64) for _ in range(rng.randrange(2, 7))]
        prompts.append((motif * 20)[: rng.randrange(3, 50)])
    return prompts


def _greedy(model, prompt: list[int], max_new_tokens: int, **kwargs) -> list[int]:
    """`model.generate` greedy, new tokens up to and including EOS."""
    ids = torch.tensor([prompt])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False,
                         pad_token_id=PAD, **kwargs)[0, len(prompt):].tolist()
    return out[: out.index(EOS) + 1] if EOS in out else out


@pytest.fixture(scope="module")
def reference(model):
    prompts = _prompts(40)
    return prompts, [_greedy(model, p, 24) for p in prompts]


def test_one_at_a_time_equals_greedy_and_drafts_are_accepted(model, reference):
    prompts, expected = reference
    stats = DecodeStats()
    got = [lookahead_generate(model, [p], 24, LookaheadConfig(max_draft=8), pad_token_id=PAD, stats=stats)[0]
           for p in prompts]
    assert got == expected
    assert stats.accepted > 20  # the repetitive prompts are copied: verification really kept draft tokens
    assert stats.steps < stats.tokens  # fewer forward passes than tokens


def test_batched_with_left_padding_equals_one_at_a_time(model, reference):
    prompts, expected = reference
    for batch in (4, 16, 40):
        got = []
        for i in range(0, len(prompts), batch):
            got.extend(lookahead_generate(model, prompts[i : i + batch], 24, pad_token_id=PAD))
        assert got == expected, f"batch {batch}"


def test_rejected_drafts_roll_back_the_cache(model, reference, monkeypatch):
    """Drafts that are the true continuation with random corruptions: every row accepts a different
    number of tokens each step, so crops and masked holes are both exercised."""
    prompts, expected = reference
    truth = {tuple(p): p + e for p, e in zip(prompts, expected)}
    rng = random.Random(1)

    def corrupted(self, limit):
        for prompt, full in truth.items():
            if tuple(self.tokens[: len(prompt)]) == prompt and len(self.tokens) >= len(prompt):
                guess = list(full[len(self.tokens) : len(self.tokens) + limit])
                return [t if rng.random() > 0.2 else rng.randrange(3, 64) for t in guess]
        return []

    monkeypatch.setattr(Drafter, "draft", corrupted)
    stats = DecodeStats()
    assert lookahead_generate(model, prompts, 24, LookaheadConfig(max_draft=6), pad_token_id=PAD, stats=stats) == expected
    assert 0 < stats.accepted < stats.drafted


def test_no_draft_is_plain_greedy(model, reference):
    prompts, expected = reference
    stats = DecodeStats()
    got = lookahead_generate(model, prompts[:5], 24, LookaheadConfig(max_draft=0), pad_token_id=PAD, stats=stats)
    assert got == expected[:5]
    assert stats.drafted == 0


def test_logits_processors_match_generate(model, reference):
    from transformers import NoRepeatNGramLogitsProcessor, RepetitionPenaltyLogitsProcessor

    prompts, _ = reference
    processors = [RepetitionPenaltyLogitsProcessor(1.3), NoRepeatNGramLogitsProcessor(3)]
    for prompt in prompts[:10]:
        expected = _greedy(model, prompt, 16, repetition_penalty=1.3, no_repeat_ngram_size=3)
        assert lookahead_generate(model, [prompt], 16, pad_token_id=PAD, processors=processors) == [expected]


def test_answer_only_ngram_ban_lets_the_answer_copy_the_prompt(model, reference):
    from transformers import LogitsProcessorList, NoRepeatNGramLogitsProcessor

    from qfsum.writers.lookahead import AnswerNoRepeatNGram, writer_processors

    prompts, _ = reference
    scores = torch.zeros(1, 64)
    ids = torch.tensor([[5, 6, 7, 9, 5, 6]])  # prompt 5 6 7 9, answer so far 5 6
    assert NoRepeatNGramLogitsProcessor(3)(ids, scores.clone())[0, 7] == float("-inf")  # the prompt's 3-gram is banned
    assert AnswerNoRepeatNGram(3, prompt_length=4)(ids, scores.clone())[0, 7] == 0  # ... not by the answer-only ban
    repeat = torch.tensor([[5, 6, 7, 9, 8, 1, 3, 8, 1]])  # answer 8 1 3 8 1: a second "8 1 3" is banned
    assert AnswerNoRepeatNGram(3, prompt_length=4)(repeat, scores.clone())[0, 3] == float("-inf")

    # lookahead with per-row processors equals generate() with the same processor, alone and batched
    def rows(length: int) -> list:
        return writer_processors(3, prompt_length=length)

    chosen = prompts[:8]
    expected = [_greedy(model, p, 16, logits_processor=LogitsProcessorList(rows(len(p)))) for p in chosen]
    assert lookahead_generate(model, chosen, 16, pad_token_id=PAD, processors=rows) == expected


def test_stops_at_eos_and_length(model, reference):
    prompts, expected = reference
    # make a token greedy emits an EOS: the output must stop right after its first occurrence
    prompt, full = next((p, e) for p, e in zip(prompts, expected) if len(set(e)) > 2)
    stop = full[3]
    got = lookahead_generate(model, [prompt], 24, pad_token_id=PAD, eos_token_id=[EOS, stop])[0]
    assert got == full[: full.index(stop) + 1]
    assert lookahead_generate(model, [prompt], 5, pad_token_id=PAD)[0] == full[:5]
    assert lookahead_generate(model, [prompt], 0) == [[]]
    with pytest.raises(QfsumError):
        lookahead_generate(model, [[]], 5)


def test_drafter_prefers_the_longest_latest_match():
    drafter = Drafter([5, 6, 7, 8, 9, 5, 6, 1, 2, 6], LookaheadConfig(ngram=3, pool_size=0))
    assert drafter.draft(3) == [1, 2, 6]  # "6" last followed by 1 2 6
    drafter.extend([7])  # "6 7" occurred before: 8 9 5 follows
    assert drafter.draft(3) == [8, 9, 5]
    drafter.remember([40, 41], [50, 51, 52])  # Jacobi pool: after 41 the model predicted 51 52
    assert Drafter([41], LookaheadConfig(pool_size=0)).draft(2) == []
    pooled = Drafter([1, 41], LookaheadConfig())
    pooled.remember([40, 41], [50, 51, 52])
    assert pooled.draft(5) == [51, 52]
    with pytest.raises(QfsumError):
        LookaheadConfig(ngram=1)


def test_generative_writer_with_lookahead_writes_the_same(tiny_causal_dir):
    from qfsum.document import Segment
    from qfsum.writers import Evidence, WriterConfig, build_writer

    ranked = [[Evidence(Segment(i, f"the budget was cut by {i} percent", 0, 10), 1.0) for i in range(3)]] * 3
    queries = ["What was cut?", "By how much?", "Why?"]
    texts = {}
    for decoding in ("greedy", "lookahead"):
        writer = build_writer(WriterConfig(kind="generative", model=str(tiny_causal_dir), max_new_tokens=12,
                                           dtype="float32", decoding=decoding, batch_size=2))
        texts[decoding] = [d.text for d in writer.write_batch(queries, ranked)]
    assert texts["lookahead"] == texts["greedy"]


@pytest.mark.slow
def test_packaged_smollm2_lookahead_equals_greedy(qmsum_root):
    from qfsum.assets import load_generator
    from qfsum.training.writer.taskdata import build_task_examples
    from qfsum.writers.prompt import fitted_prompt_ids

    model, tokenizer = load_generator("smollm2", "float32")
    prompts = [fitted_prompt_ids(tokenizer, e.query, e.passage) for e in build_task_examples(qmsum_root, "val", "spans")]
    eos = tokenizer.eos_token_id
    expected = []
    for p in prompts:
        out = model.generate(torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long),
                             max_new_tokens=24, do_sample=False, pad_token_id=eos)[0, len(p):].tolist()
        expected.append(out[: out.index(eos) + 1] if eos in out else out)
    one = [lookahead_generate(model, [p], 24, pad_token_id=eos, eos_token_id=eos)[0] for p in prompts]
    assert one == expected
    assert lookahead_generate(model, prompts, 24, pad_token_id=eos, eos_token_id=eos) == expected


def test_decode_bench_on_a_tiny_model(tiny_bytes_dir, tmp_path):
    from qfsum.bench.decode import DecodeBenchConfig, format_table, run_decode_bench, write_result
    from qfsum.training.writer.taskdata import TaskExample, write_task_file

    data = write_task_file(tmp_path / "task.jsonl", [
        TaskExample(f"e{i}", f"What is {i}?", f"{i} is a number. " * (i + 1), "") for i in range(3)])
    config = DecodeBenchConfig(data=str(data), split=None, model=str(tiny_bytes_dir), limit=3, max_new_tokens=6,
                               batch_sizes=(1, 2), dtype="float32")
    shown: list[dict] = []
    result = run_decode_bench(config, progress=False, on_row=shown.append)
    assert shown == result["rows"]  # every row reported as soon as measured
    rows = {(r["method"], r["batch"]): r for r in result["rows"]}
    assert set(rows) == {("greedy", 1), ("lookahead", 1), ("lookahead", 2), ("greedy", 2)}
    assert all(r["identical"] == 3 for r in rows.values())  # float32: every method writes greedy's tokens
    assert rows[("greedy", 1)]["speedup"] == 1.0
    assert 0 < result["prefill_seconds"] < rows[("lookahead", 1)]["seconds"]
    # decode time leaves out the prompt reading; only batch-1 rows share it
    assert rows[("lookahead", 1)]["decode_seconds"] == rows[("lookahead", 1)]["seconds"] - result["prefill_seconds"]
    assert "decode_speedup" in rows[("greedy", 1)] and "decode_speedup" not in rows[("greedy", 2)]
    assert "lookahead" in format_table(result)
    assert write_result(result, tmp_path / "out").exists()


def test_decode_bench_cli_rejects_bad_batch_sizes(capsys, tmp_path):
    from conftest import assert_one_error_line, cli

    code, _, err = cli(capsys, "bench", "decode", "--data", tmp_path, "--batch-sizes", "1,x")
    assert "--batch-sizes" in assert_one_error_line(code, err)
