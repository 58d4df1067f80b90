"""Grounded decoding: a number may be written only along a number of the evidence."""

from __future__ import annotations

import re

from qfsum.document import Evidence, Segment
from qfsum.writers import WriterConfig, build_writer
from qfsum.writers.grounded import allowed_numbers

QUERIES = ["What was cut?", "By how much?", "Why?", "When?", "Who paid?", "What next?", "How many?", "Where?"]
EVIDENCE = [
    ["the bridge budget was cut by 120,000 euros", "the council met on 14 march"],
    ["the roof costs 265,000 now", "the old estimate was 180,000"],
    ["nobody gave a figure", "the chair thanked everyone"],
    ["3 members voted for it and 2 against"],
]


def runs(text: str) -> list[str]:
    return [run.rstrip(".,") for run in re.findall(r"\d[\d.,]*", text)]


def test_allowed_numbers_as_written_and_without_thousands_commas():
    numbers, prefixes = allowed_numbers("The overrun is 120,000. The total: 1.42 million, on 14 March.")
    assert {"120,000", "120000", "1.42", "14"} == set(numbers)
    assert {"1", "12", "120,", "120,0", "1.", "1.4"} <= prefixes and "2" not in prefixes


def write(tiny_causal_dir, grounded: bool, decoding: str = "greedy") -> tuple[list[str], list[list[str]]]:
    writer = build_writer(WriterConfig(kind="generative", model=str(tiny_causal_dir), max_new_tokens=24,
                                       dtype="float32", decoding=decoding, batch_size=4, grounded_numbers=grounded,
                                       no_repeat_ngram_size=0))
    queries = [q for q in QUERIES for _ in EVIDENCE]
    ranked = [[Evidence(Segment(i, text, 0, len(text)), 1.0) for i, text in enumerate(evidence)]
              for _ in QUERIES for evidence in EVIDENCE]
    return [draft.text for draft in writer.write_batch(queries, ranked)], [e for _ in QUERIES for e in EVIDENCE]


def test_grounded_writer_never_writes_a_number_absent_from_its_evidence(tiny_causal_dir):
    free, evidence = write(tiny_causal_dir, grounded=False)
    grounded, _ = write(tiny_causal_dir, grounded=True)
    allowed = [allowed_numbers(" ".join(e) + " " + q)[0] for q in QUERIES for e in EVIDENCE]
    invented = [set(runs(text)) - ok for text, ok in zip(free, allowed, strict=True)]
    assert any(invented), "the random model must invent numbers, or this test proves nothing"
    for text, ok in zip(grounded, allowed, strict=True):
        assert set(runs(text)) <= ok, text


def test_grounded_decoding_changes_nothing_when_every_number_written_is_in_the_evidence(tiny_causal_dir):
    free, _ = write(tiny_causal_dir, grounded=False)
    grounded, _ = write(tiny_causal_dir, grounded=True)
    allowed = [allowed_numbers(" ".join(e) + " " + q)[0] for q in QUERIES for e in EVIDENCE]
    same = [(f, g) for f, g, ok in zip(free, grounded, allowed, strict=True) if set(runs(f)) <= ok]
    assert same, "some answers must already be grounded, or this test proves nothing"
    assert all(f == g for f, g in same)


def test_lookahead_with_grounding_equals_greedy_with_grounding(tiny_causal_dir):
    assert write(tiny_causal_dir, True, "lookahead")[0] == write(tiny_causal_dir, True, "greedy")[0]


def test_number_words_and_fraction_characters_need_the_evidence_too(tiny_causal_dir):
    import torch
    from transformers import AutoTokenizer

    from qfsum.writers.grounded import GroundedNumbers

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_dir)
    token = {w: tokenizer.convert_tokens_to_ids(w) for w in ("eight", "twenty", "one", "million", "½", "roof")}
    assert tokenizer.unk_token_id not in token.values()

    def banned(evidence: str) -> dict[str, bool]:
        prompt = tokenizer.encode(evidence, add_special_tokens=False)
        scores = GroundedNumbers(tokenizer, len(prompt))(torch.tensor([prompt]), torch.zeros(1, len(tokenizer)))
        return {w: bool(scores[0, i] == float("-inf")) for w, i in token.items()}

    assert banned("the roof costs 265,000") == {"eight": True, "twenty": True, "one": False, "million": False,
                                                "½": True, "roof": False}
    assert banned("eight people came, 20 left, ½ stayed") == dict.fromkeys(token, False)
    assert not banned("it costs twenty five euros")["twenty"]  # the first word of a number the evidence states
