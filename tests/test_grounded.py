"""Grounded decoding: a number (or a name) may be written only if the evidence states it."""

from __future__ import annotations

import pytest
import torch

from qfsum.document import Evidence, Segment
from qfsum.grounding import numbers
from qfsum.writers import WriterConfig, build_writer
from qfsum.writers.grounded import GroundedNames, GroundedNumbers, allowed_numbers, normalise
from qfsum.writers.prompt import evidence_in_prompt, prompt_ids

QUERIES = ["What was cut?", "By how much?", "Why?", "When?", "Who paid?", "What next?", "How many?", "Where?"]
EVIDENCE = [
    ["the bridge budget was cut by 120,000 euros", "the council met on 14 march"],
    ["the roof costs 265,000 now", "the old estimate was 180,000"],
    ["nobody gave a figure", "the chair thanked everyone"],
    ["3 members voted for it and 2 against, twenty five in all"],
]


def test_allowed_numbers_are_the_stated_phrases_and_the_digits_of_their_values():
    allowed = allowed_numbers("The overrun is 120,000. The total: 1.42 million, on 14 March; twenty-five came.")
    assert {"120000", "1.42 million", "1420000", "twenty five", "25"} <= allowed
    assert not {"1.42", "12", "2", "twenty", "1", "14"} & allowed  # "14" only as the day of "14 March"


@pytest.mark.parametrize("text, expected", [
    ("It rose 2.5 per cent", "it rose 2.5%"),
    ("1,300,000 and twenty-five", "1300000 and twenty five"),
    ("about  30 %", "about 30%"),
])
def test_normalise(text, expected):
    assert normalise(text) == expected


def write(model_dir, grounded: bool, decoding: str = "greedy", num_beams: int = 1, bias: float = 0.0) -> list[str]:
    writer = build_writer(WriterConfig(kind="generative", model=str(model_dir), max_new_tokens=24,
                                       dtype="float32", decoding=decoding, batch_size=4, grounded_numbers=grounded,
                                       no_repeat_ngram_size=0, num_beams=num_beams, evidence_bias=bias))
    queries = [q for q in QUERIES for _ in EVIDENCE]
    ranked = [[Evidence(Segment(i, text, 0, len(text)), 1.0) for i, text in enumerate(evidence)]
              for _ in QUERIES for evidence in EVIDENCE]
    return [draft.text for draft in writer.write_batch(queries, ranked)]


def stated() -> list[set[str]]:
    return [set(numbers(" ".join(e))) for _ in QUERIES for e in EVIDENCE]  # the evidence only, not the question


def invented(texts: list[str]) -> list[set[str]]:
    return [set(numbers(text)) - ok for text, ok in zip(texts, stated(), strict=True)]


@pytest.mark.parametrize("kind, num_beams", [("causal", 1), ("seq2seq", 1), ("seq2seq", 3)])
def test_grounded_writer_never_writes_a_number_absent_from_its_evidence(kind, num_beams, request):
    model_dir = request.getfixturevalue(f"tiny_{kind}_dir")
    assert any(invented(write(model_dir, False, num_beams=num_beams))), \
        "the random model must invent numbers, or this test proves nothing"
    assert not any(invented(write(model_dir, True, num_beams=num_beams)))


def test_grounded_decoding_changes_nothing_when_every_number_written_is_in_the_evidence(tiny_causal_dir):
    free, grounded = write(tiny_causal_dir, False), write(tiny_causal_dir, True)
    same = [(f, g) for f, g, extra in zip(free, grounded, invented(free), strict=True) if not extra]
    assert same, "some answers must already be grounded, or this test proves nothing"
    assert all(f == g for f, g in same)


def test_lookahead_with_grounding_equals_greedy_with_grounding(tiny_causal_dir):
    assert write(tiny_causal_dir, True, "lookahead") == write(tiny_causal_dir, True, "greedy")


def test_lookahead_with_evidence_bias_equals_greedy_with_it(tiny_causal_dir):
    assert write(tiny_causal_dir, True, "lookahead", bias=2.0) == write(tiny_causal_dir, True, "greedy", bias=2.0)


def prompt_share(texts: list[str], tokenizer, seq2seq: bool) -> float:
    """The share of the answers' tokens that their prompt (evidence, query, instructions) holds."""
    from qfsum.writers.prompt import prompt_ids

    held = total = 0
    for text, (q, e) in zip(texts, [(q, e) for q in QUERIES for e in EVIDENCE], strict=True):
        source = set(prompt_ids(tokenizer, q, "\n".join(e), seq2seq=seq2seq))
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        held, total = held + sum(i in source for i in ids), total + len(ids)
    return held / max(total, 1)


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
def test_evidence_bias_makes_the_writer_copy_its_evidence(kind, request):
    from transformers import AutoTokenizer

    model_dir = request.getfixturevalue(f"tiny_{kind}_dir")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    free, biased = write(model_dir, True), write(model_dir, True, bias=50.0)
    share = [prompt_share(texts, tokenizer, kind == "seq2seq") for texts in (free, biased)]
    assert share[0] < 0.8, "the random model must stray from its prompt, or this test proves nothing"
    assert share[1] > 0.9  # not 1: a grounded number may be open, and the decoded answer is tokenized again


def test_evidence_bias_raises_the_prompt_tokens_and_the_end_of_answer_only(smollm2_tokenizer):
    from qfsum.writers.grounded import EvidenceBias

    marker = smollm2_tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert marker != smollm2_tokenizer.eos_token_id and marker in smollm2_tokenizer.all_special_ids
    words = smollm2_tokenizer("the roof costs", add_special_tokens=False)["input_ids"]
    prompt = [marker] + words
    scores = torch.zeros(1, len(smollm2_tokenizer))
    raised = EvidenceBias(smollm2_tokenizer, 1.5, len(prompt))(torch.tensor([prompt]), scores.clone())
    expected = torch.zeros_like(scores)
    expected[0, words + [smollm2_tokenizer.eos_token_id]] = 1.5  # the end stays level with copied words: no longer answers
    assert torch.equal(raised, expected)


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    """The shipped writer's tokenizer: digits one token each, number words whole, cased."""
    from qfsum.assets import load_tokenizer

    return load_tokenizer("smollm2")


EVIDENCE_TEXT = ("The overrun is 120,000 euros. The budget line is 1.3 million. It costs twenty five Euros, "
                 "about 2.5 percent. We meet on 14 March with Anna Berg.")


def allowed(tokenizer, processor, answer: str, tokens: list[str]) -> dict[str, bool]:
    prompt = tokenizer.encode(EVIDENCE_TEXT, add_special_tokens=False)
    written = tokenizer.encode(answer, add_special_tokens=False)
    scores = processor(tokenizer, len(prompt))(torch.tensor([prompt + written]), torch.zeros(1, len(tokenizer)))
    out = {}
    for token in tokens:
        (token_id,) = tokenizer.encode(token, add_special_tokens=False)
        out[token] = bool(scores[0, token_id] > float("-inf"))
    return out


@pytest.mark.parametrize("answer, tokens", [
    ("The overrun was ", {"1": True, "2": True, "3": False, "8": False}),
    ("The overrun was 1.3", {" million": True, " euros": False, "%": False, ".": False}),  # 1.3 alone is not stated
    ("The overrun was 1.3 million", {" euros": True, ".": True}),
    ("The share was 2", {".": True, "5": True, " euros": False, "%": False}),
    ("The share was 2.", {"5": True, " ": False}),  # "2" is not stated: the point can only be 2.5's
    ("It costs twenty", {" five": True, " euros": False, " million": False, "-": True}),
    ("It costs twenty-", {"five": True, "six": False}),
    ("It costs 2", {"5": True, "0": False}),  # "twenty five" may be written 25
    ("It costs 25", {" euros": True, " million": False, "%": False}),
    ("It costs twenty five", {" and": True, " percent": False, "%": False}),  # 25 is stated, 25% is not
    ("It is about 2.5", {" percent": True, "%": True}),
    ("They were", {" eight": False, " twenty": True, " one": True}),  # a lone "one" stays free
    ("one", {" of": True, " million": False}),
    ("We meet on 14", {" March": True, " Mar": True, "-": False, " years": False, " April": False, ".": False}),
    ("A 14", {" March": True, "-": False}),  # the day of a stated date does not stand alone ("14-year plan")
    ("A 14 M", {"arch": True, "ar": True, "ark": False, "any": False, ".": False}),  # begun as "14 March" ...
    ("A 14 Mar", {"ch": True, ".": True, " the": True, "k": False}),  # ... it goes on as March ("Mar." too), no other word
    ("We meet on March 14", {".": True, " and": True}),  # month first: the date is whole
    ("We meet on Mark 14", {".": False}),
    ("We meet on March ", {"1": True, "2": False}),  # after a month only a stated day of it: 14, not 2.5 or 25
    ("We meet on March 1", {"4": True, "2": False}),  # "12" starts 120,000 but no date of March
])
def test_numbers_table(smollm2_tokenizer, answer, tokens):
    assert allowed(smollm2_tokenizer, GroundedNumbers, answer, list(tokens)) == tokens


def test_a_point_after_a_stated_whole_number_ends_the_sentence(smollm2_tokenizer):
    tokenizer = smollm2_tokenizer
    prompt = tokenizer.encode("The overrun is 2 times the plan, 120,000.", add_special_tokens=False)
    for answer in ("It was 2.", "It was 2. "):
        written = tokenizer.encode(answer, add_special_tokens=False)
        scores = GroundedNumbers(tokenizer, len(prompt))(torch.tensor([prompt + written]), torch.zeros(1, len(tokenizer)))
        digits = [tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)]
        assert all(scores[0, d] == float("-inf") for d in digits), answer


@pytest.mark.parametrize("answer, tokens", [
    ("The meeting was chaired by", {" Anna": True, " Bob": False, " the": True}),
    ("The meeting was chaired by Anna", {" Berg": True, " Smith": False}),
    ("It ended. ", {"Bob": True}),  # a sentence's first word is free
])
def test_names_table(smollm2_tokenizer, answer, tokens):
    assert allowed(smollm2_tokenizer, GroundedNames, answer, list(tokens)) == tokens


@pytest.mark.parametrize("seq2seq", [False, True])
def test_the_evidence_in_a_prompt_leaves_out_the_question(smollm2_tokenizer, seq2seq):
    evidence = "Anna said the overrun is 120,000.\nQuestion: none here"
    ids = prompt_ids(smollm2_tokenizer, "What did they say about COVID-19?", evidence, seq2seq=seq2seq)
    assert evidence_in_prompt(smollm2_tokenizer.decode(ids, skip_special_tokens=True)).strip() == evidence
    assert evidence_in_prompt("bare evidence, no template") == "bare evidence, no template"


def test_a_number_or_name_only_the_question_states_is_not_evidence(smollm2_tokenizer):
    # the writer once wrote "COVID-19" from the question, against excerpts that never say it
    tokenizer = smollm2_tokenizer
    prompt = prompt_ids(tokenizer, "How did the COVID-19 rules change in Wales?", "Anna said the 12 towns agreed.")

    def free(answer: str, processor, token: str) -> bool:
        written = tokenizer.encode(answer, add_special_tokens=False)
        scores = processor(tokenizer, len(prompt))(torch.tensor([prompt + written]), torch.zeros(1, len(tokenizer)))
        (token_id,) = tokenizer.encode(token, add_special_tokens=False)
        return bool(scores[0, token_id] > float("-inf"))

    assert free("They said 1", GroundedNumbers, "2") and not free("They said 1", GroundedNumbers, "9")
    assert free("It was", GroundedNames, " Anna") and not free("It was", GroundedNames, " Wales")


def test_number_words_and_fraction_characters_need_the_evidence_too(tiny_causal_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_dir)
    token = {w: tokenizer.convert_tokens_to_ids(w) for w in ("eight", "twenty", "one", "½", "roof")}
    assert tokenizer.unk_token_id not in token.values()

    def banned(evidence: str) -> dict[str, bool]:
        prompt = tokenizer.encode(evidence, add_special_tokens=False)
        scores = GroundedNumbers(tokenizer, len(prompt))(torch.tensor([prompt]), torch.zeros(1, len(tokenizer)))
        return {w: bool(scores[0, i] == float("-inf")) for w, i in token.items()}

    assert banned("the roof costs 265,000") == {"eight": True, "twenty": True, "one": False, "½": True, "roof": False}
    assert banned("eight people came, 20 left, ½ stayed") == dict.fromkeys(token, False)
    assert not banned("it costs twenty five euros")["twenty"]  # the first word of a number the evidence states


def test_whole_document_seq2seq_writers_ground_their_beams_too(tiny_seq2seq_dir):
    def answers(grounded: bool) -> list[set[str]]:
        writer = build_writer(WriterConfig(kind="bart", model=str(tiny_seq2seq_dir), max_new_tokens=24, num_beams=2,
                                           dtype="float32", grounded_numbers=grounded, no_repeat_ngram_size=0))
        queries = [q for q in QUERIES for _ in EVIDENCE]
        ranked = [[Evidence(Segment(i, text, 0, len(text)), 1.0) for i, text in enumerate(evidence)]
                  for _ in QUERIES for evidence in EVIDENCE]
        return invented([draft.text for draft in writer.write_batch(queries, ranked)])

    assert any(answers(False)), "the random model must invent numbers, or this test proves nothing"
    assert not any(answers(True))


def test_a_row_with_nothing_left_to_write_ends_instead_of_taking_token_zero(smollm2_tokenizer):
    prompt = smollm2_tokenizer.encode(EVIDENCE_TEXT, add_special_tokens=False)
    written = smollm2_tokenizer.encode("The overrun is 12", add_special_tokens=False)
    scores = torch.full((1, len(smollm2_tokenizer)), float("-inf"))  # an n-gram ban took every other token
    scores[0, smollm2_tokenizer.encode("3", add_special_tokens=False)[0]] = 1.0  # "123" is not stated
    out = GroundedNumbers(smollm2_tokenizer, len(prompt))(torch.tensor([prompt + written]), scores)
    assert out[0].argmax().item() == smollm2_tokenizer.eos_token_id != 0
    assert torch.isfinite(out[0]).sum().item() == 1


def test_after_a_month_a_plain_number_of_the_evidence_is_no_day(smollm2_tokenizer):
    # the evidence's "July twenty - fifth" once let a writer put "July 20th": its "twenty" is a number,
    # not a day; a year the evidence states may still follow a month
    tokenizer = smollm2_tokenizer
    prompt = tokenizer.encode("The quals are in July twenty - fifth. 20 people came. It launched in March 2021.",
                              add_special_tokens=False)

    def free(answer: str, token: str) -> bool:
        written = tokenizer.encode(answer, add_special_tokens=False)
        scores = GroundedNumbers(tokenizer, len(prompt))(torch.tensor([prompt + written]), torch.zeros(1, len(tokenizer)))
        (token_id,) = tokenizer.encode(token, add_special_tokens=False)
        return bool(scores[0, token_id] > float("-inf"))

    assert free("Then 2", "0") and free("Then 20", " people")  # 20 stands as a number
    assert not free("The quals are in July 20", "th") and not free("The quals are in July 20", ".")
    assert free("The quals are in July 2", "0") and free("The quals are in July 20", "2")  # only towards 2021
    assert free("It launched in March 202", "1") and free("It launched in March 2021", ".")
    # the day it does date, in words, may be written in digits after its month; not after another month
    assert free("The quals are in July 2", "5") and free("The quals are in July 25", "th")
    assert not free("It launched in March 2", "5")
