"""Support scorers: the registry, the NLI scorer's wiring on a tiny in-process BERT classifier (label
mapping, one score per segment in [0, 1], long segments in sentence windows, errors), its use by
`qfsum evaluate --support-scorer`, and agreement with hand labels."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from conftest import assert_one_error_line, cli, write_jsonl

from qfsum.errors import QfsumError
from qfsum.evaluation.agreement import agreement
from qfsum.grounding import LexicalSupport
from qfsum.support import NLISupport, build_support_scorer, entailment_index

NLI_LABELS = {0: "entailment", 1: "neutral", 2: "contradiction"}
WORDS = ("the budget was cut by ten percent because steel prices rose bridge council met on monday "
         "reading room will close in march library report roof repairs cost forty thousand pounds "
         "a an and of to is it they team decided agreed").split()


def _tiny_nli(directory: Path, id2label: dict[int, str], bias: list[float] | None = None, positions: int = 64) -> Path:
    """Save a random 1-layer BERT sequence classifier (hidden 16) and a WordPiece tokenizer of WORDS.
    With `bias`, the classifier ignores its input (zero weights): every pair gets softmax(bias)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", *WORDS]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=positions, num_labels=len(id2label),
                        id2label=id2label, label2id={v: k for k, v in id2label.items()})
    model = BertForSequenceClassification(config)
    if bias is not None:
        with torch.no_grad():
            model.classifier.weight.zero_()
            model.classifier.bias.copy_(torch.tensor(bias))
    model.save_pretrained(directory)  # safetensors
    tokenizer.save_pretrained(directory)
    return directory


def _softmax(values: list[float]) -> list[float]:
    total = sum(math.exp(v) for v in values)
    return [math.exp(v) / total for v in values]


# -- label mapping -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "id2label, index",
    [
        ({0: "entailment", 1: "neutral", 2: "contradiction"}, 0),  # MNLI order of many models
        ({0: "CONTRADICTION", 1: "NEUTRAL", 2: "ENTAILMENT"}, 2),  # roberta-large-mnli
        ({0: "contradiction", 1: "entailment", 2: "neutral"}, 1),
        ({0: "entailment", 1: "not_entailment"}, 0),  # QNLI / RTE: "not_entailment" is not it
        ({0: "not entailment", 1: "Entailment"}, 1),
        ({0: "NOT_SUPPORTED", 1: "SUPPORTED"}, 1),  # fact-checking
        ({0: "supported", 1: "unsupported"}, 0),
        ({0: "inconsistent", 1: "consistent"}, 1),
        ({0: "INCORRECT", 1: "CORRECT"}, 1),  # FactCC
        ({0: "LABEL_0", 1: "LABEL_1"}, 1),  # a 2-label model with default names: 1 = supported
        ({"0": "0", "1": "1"}, 1),  # string keys, as config.json stores them
    ],
)
def test_entailment_index_finds_the_supported_label(id2label, index):
    assert entailment_index(id2label) == index


@pytest.mark.parametrize(
    "id2label",
    [
        {0: "positive", 1: "negative"},  # sentiment: no label means support
        {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"},  # 3 labels, none named
        {0: "entails", 1: "entailment", 2: "neutral"},  # two candidates: ambiguous
        {0: "supported", 1: "neutral", 2: "refuted"},  # 'supported' counts only for 2-label models
        {0: "label"},
    ],
)
def test_entailment_index_refuses_labels_it_cannot_read(id2label):
    with pytest.raises(QfsumError, match="id2label") as err:
        entailment_index(id2label, "some/model")
    assert "some/model" in str(err.value) and "\n" not in str(err.value)


# -- the NLI scorer ------------------------------------------------------------------------------


def test_build_support_scorer_lexical_is_the_default():
    assert isinstance(build_support_scorer("lexical"), LexicalSupport)
    assert build_support_scorer("").name == "lexical"


@pytest.mark.parametrize(
    "id2label, entail",
    [(NLI_LABELS, 0), ({0: "contradiction", 1: "neutral", 2: "entailment"}, 2)],
)
def test_nli_scores_are_the_entailment_label_probability(tmp_path, id2label, entail):
    # zero classifier weights: every pair's probabilities are softmax(bias), so the score shows
    # which label the scorer reads
    bias = [3.0, 0.5, -1.0]
    scorer = build_support_scorer(str(_tiny_nli(tmp_path / "nli", id2label, bias)))
    assert isinstance(scorer, NLISupport) and scorer.label == entail
    segments = ["The budget was cut by ten percent.", "The reading room will close in March.", "Roof."]
    scores = scorer.scores("The budget was cut.", segments)
    assert len(scores) == len(segments)
    assert scores == pytest.approx([_softmax(bias)[entail]] * 3, abs=1e-5)
    assert scorer.scores("The budget was cut.", []) == []


def test_nli_scores_of_a_random_model_are_probabilities_per_segment(tmp_path):
    scorer = NLISupport.load(str(_tiny_nli(tmp_path / "nli", NLI_LABELS)))
    segments = ["the budget was cut by ten percent", "the council met on monday", "roof repairs cost forty thousand pounds"]
    scores = scorer.scores("the budget was cut", segments)
    assert len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)
    assert len(set(round(s, 6) for s in scores)) > 1  # the premise matters: a random model still varies
    # batched or alone, the same figure (padding must not change a pair's score)
    alone = [scorer.scores("the budget was cut", [s])[0] for s in segments]
    assert scores == pytest.approx(alone, abs=1e-5)


def test_nli_splits_a_long_segment_into_sentence_windows_and_takes_the_best(tmp_path):
    scorer = NLISupport.load(str(_tiny_nli(tmp_path / "nli", NLI_LABELS, positions=40)))
    assert scorer.max_length == 40
    sentences = [f"The {w} was cut by ten percent." for w in ("budget", "bridge", "roof", "library", "room", "team")]
    long = " ".join(sentences) + "\nThe council met on Monday. The reading room will close in March."
    budget = 20
    windows = scorer.windows(long, budget)
    assert len(windows) > 2
    tokens = [len(scorer.tokenizer(w, add_special_tokens=False)["input_ids"]) for w in windows]
    assert max(tokens) <= budget
    assert all(w in long for w in windows)
    assert windows[0].startswith("The budget") and windows[-1].endswith("close in March.")
    for before, after in zip(windows, windows[1:]):  # consecutive windows share one sentence
        assert re.split(r"(?<=\.)\s+", before)[-1] == re.split(r"(?<=\.)\s+", after)[0]
    # the long segment scores as its best window (the windows scores() makes for this hypothesis)
    hypothesis = "The roof was cut."
    budget = 40 - len(scorer.tokenizer(hypothesis, add_special_tokens=False)["input_ids"]) - 3  # [CLS] [SEP] [SEP]
    windows = scorer.windows(long, budget)
    assert len(windows) > 1
    whole = scorer.scores(hypothesis, [long])[0]
    assert whole == pytest.approx(max(scorer.scores(hypothesis, [w])[0] for w in windows), abs=1e-5)


def test_nli_cuts_a_sentence_longer_than_the_window(tmp_path):
    scorer = NLISupport.load(str(_tiny_nli(tmp_path / "nli", NLI_LABELS)))
    run_on = " ".join(["the budget was cut"] * 20)  # 80 tokens, no full stop
    windows = scorer.windows(run_on, 16)
    assert all(len(scorer.tokenizer(w, add_special_tokens=False)["input_ids"]) <= 16 for w in windows)
    assert "".join(w.replace(" ", "") for w in windows) == run_on.replace(" ", "")  # nothing lost
    assert 0.0 <= scorer.scores("the budget was cut", [run_on])[0] <= 1.0


def test_nli_model_with_unreadable_labels_is_one_error_before_loading_weights(tmp_path):
    directory = _tiny_nli(tmp_path / "sentiment", {0: "positive", 1: "negative"})
    (directory / "model.safetensors").unlink()  # the labels alone must stop it
    with pytest.raises(QfsumError, match="cannot tell which label"):
        build_support_scorer(str(directory))


def test_unknown_support_scorer_and_pickle_weights_are_one_line_errors(tmp_path):
    with pytest.raises(QfsumError, match="unknown model"):
        build_support_scorer("no-such-scorer")
    with pytest.raises(QfsumError):
        build_support_scorer(str(tmp_path / "missing" / "dir"))
    directory = _tiny_nli(tmp_path / "pickled", NLI_LABELS)
    (directory / "model.safetensors").rename(directory / "pytorch_model.bin")
    with pytest.raises(QfsumError, match="safetensors"):
        build_support_scorer(str(directory))


# -- qfsum evaluate --support-scorer -------------------------------------------------------------


@pytest.mark.parametrize("bias, expected", [([6.0, 0.0, 0.0], 1.0), ([-6.0, 0.0, 0.0], 0.0)])
def test_evaluate_judges_supported_sentences_with_the_nli_scorer(capsys, tmp_path, jsonl_path, bias, expected):
    model = _tiny_nli(tmp_path / "nli", NLI_LABELS, bias)  # entailment probability ~0.995 or ~0.001
    out = tmp_path / "run"
    args = ["evaluate", "--data", jsonl_path, "-p", "extractive-bm25", "--out", out, "--no-progress"]
    code, printed, err = cli(capsys, *args, "--support-scorer", model)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["support_scorer"] == str(model)
    assert metrics["supported_sentences"] == expected
    assert json.loads((out / "run.json").read_text())["support_scorer"] == str(model)
    assert f"{model} support scorer" in printed
    # the same folder with another scorer would mix judgements: refused
    code, _, err = cli(capsys, *args)
    assert "support scorer" in assert_one_error_line(code, err)


def test_evaluate_with_an_unknown_support_scorer_is_a_user_error(capsys, tmp_path, jsonl_path):
    code, _, err = cli(capsys, "evaluate", "--data", jsonl_path, "-p", "extractive-bm25", "--out", tmp_path / "o",
                       "--no-progress", "--support-scorer", "no-such-scorer")
    assert "no-such-scorer" in assert_one_error_line(code, err)
    assert not (tmp_path / "o").exists()  # refused before any work


def test_evaluate_records_the_lexical_scorer_by_default(capsys, tmp_path, jsonl_path):
    out = tmp_path / "run"
    code, _, err = cli(capsys, "evaluate", "--data", jsonl_path, "-p", "extractive-bm25", "--out", out, "--no-progress")
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["support_scorer"] == "lexical"


# -- agreement with hand labels ------------------------------------------------------------------


class _Fixed:
    """A scorer that supports exactly the sentences it is told to."""

    name = "fixed"

    def __init__(self, supported: set[str]) -> None:
        self.supported = supported

    def scores(self, sentence, segments):
        return [1.0 if sentence in self.supported else 0.0 for _ in segments]


def test_agreement_counts_and_not_supported_precision_recall():
    labels = [
        {"id": "a", "sentence": "s1", "supported": True},
        {"id": "a", "sentence": "s2", "supported": True},
        {"id": "a", "sentence": "s3", "supported": False},
        {"id": "b", "sentence": "s4", "supported": False},
        {"id": "b", "sentence": "s5", "supported": False},
        {"id": "c", "sentence": "s6", "supported": False},  # no evidence: never supported
    ]
    evidence = {"a": ["seg"], "b": ["seg"]}
    table = agreement(labels, evidence, _Fixed({"s1", "s3", "s6"}))
    assert (table.both_supported, table.missed_support, table.missed_error, table.both_unsupported) == (1, 1, 1, 3)
    assert table.precision_not_supported == pytest.approx(3 / 4)  # flagged: s2, s4, s5, s6
    assert table.recall_not_supported == pytest.approx(3 / 4)  # unsupported: s3, s4, s5, s6


def test_support_agreement_benchmark_takes_a_support_scorer(tmp_path, qmsum_root):
    """benchmarks/support_agreement.py on a run made here: evidence rebuilt from the run, the scorer
    given on the command line (a tiny NLI that supports everything: every label 'supported')."""
    import subprocess
    import sys

    from qfsum import Pipeline
    from qfsum.evaluation.runner import evaluate
    from qfsum.readers import read_examples

    examples = read_examples(qmsum_root, "val")[:2]
    run = tmp_path / "run"
    evaluate(Pipeline.load("extractive-bm25"), examples, run, f"{qmsum_root}:val", progress=False, report=False)
    rows = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    labels = write_jsonl(tmp_path / "labels.jsonl", [
        {"id": rows[0]["id"], "sentence": "The team discussed the budget.", "supported": True, "reason": "r"},
        {"id": rows[1]["id"], "sentence": "They bought a yacht.", "supported": False, "reason": "r"},
    ])
    model = _tiny_nli(tmp_path / "nli", NLI_LABELS, [6.0, 0.0, 0.0])
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "support_agreement.py"
    result = subprocess.run([sys.executable, str(script), str(labels), str(run), str(qmsum_root),
                             "--support-scorer", str(model)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "| supported | 1 | 0 |" in result.stdout and "| not supported | 1 | 0 |" in result.stdout
    assert "recall 0.000" in result.stdout
