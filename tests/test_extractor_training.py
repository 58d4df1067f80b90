"""Trained extractors (RelReg, RelRegTT, DPR): pairs, training, best model, resuming, scorers, CLI,
and the two-stage pipeline's token budget. Tiny random BERT encoders; synthetic meetings."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import TrainerCallback

from qfsum import Pipeline, PipelineConfig, QfsumError
from qfsum.document import Document, Example, Segment
from qfsum.writers import WriterConfig
from qfsum.readers import read_examples
from qfsum.retrieval import ScorerConfig, build_scorer
from qfsum.retrieval.registry import encoder_type, scorer_config_for_model
from qfsum.retrieval.cross import CrossEncoderScorer
from qfsum.retrieval.dense import DenseScorer
from qfsum.segment import Segmenter
from qfsum.training.common.trainer import sample_examples
from qfsum.training.extractor.pairs import Labelled, PairConfig, dpr_triples, positives, regression_pairs
from qfsum.training.extractor.train import ExtractorTrainingConfig, _validation, train_extractor

from conftest import assert_one_error_line, cli, write_jsonl

KINDS = ("relreg", "relregtt", "dpr")

# -- synthetic meetings whose relevant turns are learnable -------------------------------------------

TOPICS = {
    "budget": "twelve euros fifty per unit price",
    "rubber": "soft rubber case cheap material",
    "voice": "voice recognition speech commands",
    "colour": "bright yellow colour scheme",
    "battery": "rechargeable battery lasting power",
    "buttons": "large rounded buttons layout",
}
FILLER = ["Yeah.", "Okay.", "Mm-hmm.", "Right, so.", "I see.", "Sure."]


def _meeting(rng: random.Random, turns: int = 16) -> dict:
    """Even turns talk about one of four topics, odd turns are filler; one query per topic."""
    keys = rng.sample(list(TOPICS), 4)
    transcript, spans = [], {}
    for i in range(turns):
        speaker = rng.choice(["Ann", "Bob"])
        if i % 2 == 0:
            key = keys[(i // 2) % len(keys)]
            spans.setdefault(key, []).append([str(i), str(i)])
            transcript.append({"speaker": speaker, "content": f"About the {key}: {TOPICS[key]}."})
        else:
            transcript.append({"speaker": speaker, "content": rng.choice(FILLER)})
    queries = [
        {"query": f"What was said about the {k}?", "answer": f"The {k}: {TOPICS[k]}.", "relevant_text_span": spans[k]}
        for k in keys
    ]
    return {"topic_list": [], "general_query_list": [], "specific_query_list": queries, "meeting_transcripts": transcript}


def write_training_qmsum(root: Path, n_train: int = 6, n_val: int = 2, seed: int = 0) -> Path:
    rng = random.Random(seed)
    base = Path(root) / "qmsum"
    for split, n in (("train", n_train), ("val", n_val)):
        (base / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            (base / split / f"{split}{i}.json").write_text(json.dumps(_meeting(rng)))
    return base


@pytest.fixture(scope="module")
def training_root(tmp_path_factory) -> Path:
    return write_training_qmsum(tmp_path_factory.mktemp("training-data"))


@pytest.fixture(autouse=True)
def _label_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QFSUM_CACHE", str(tmp_path / "cache"))  # labels never go to ~/.cache in tests


def _config(kind: str, root: Path, out: Path, base: Path, **overrides) -> ExtractorTrainingConfig:
    options = dict(
        kind=kind,
        data=str(root),
        out=str(out),
        base=str(base),
        pairs=PairConfig(positive_threshold=0.3, max_positives=2, negatives_per_positive=2),
        epochs=4,
        batch_size=8,
        lr=1e-3,
        log_steps=1,
        eval_steps=1000,
        save_steps=1000,
        val_budget=30,
        val_tokenizer="words",
        dtype="float32",
        label_workers=1,
    )
    options.update(overrides)
    return ExtractorTrainingConfig(**options)


@pytest.fixture(scope="module")
def trained(training_root, tiny_bert_dir, tmp_path_factory) -> dict:
    """Each kind trained once (4 epochs on 24 queries), shared by the tests below."""
    runs = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QFSUM_CACHE", str(tmp_path_factory.mktemp("cache")))
        for kind in KINDS:
            config = _config(kind, training_root, tmp_path_factory.mktemp(kind) / "model", tiny_bert_dir, eval_steps=10)
            runs[kind] = (config, train_extractor(config, progress=False, command=f"qfsum train extractor --kind {kind}"))
    return runs


# -- pairs ------------------------------------------------------------------------------------------


def _labelled(labels: list[float], query: str = "budget?") -> Labelled:
    texts = [f"segment {i} about {'the budget' if i % 2 else 'lunch'}" for i in range(len(labels))]
    document = Document.from_units([(None, t) for t in texts])
    return Labelled(Example(query, document, query, ["the budget"]), Segmenter()(document), np.array(labels))


def test_positives_are_the_best_few_above_the_threshold():
    config = PairConfig(positive_threshold=0.3, max_positives=2)
    assert positives(np.array([0.1, 0.5, 0.4, 0.9, 0.35]), config).tolist() == [3, 1]
    assert positives(np.array([0.1, 0.31, 0.2]), config).tolist() == [1]
    assert positives(np.array([0.1, 0.2]), config).tolist() == []


def test_regression_pairs_subsample_negatives_and_cap():
    items = [_labelled([0.0, 0.5, 0.1, 0.0, 0.2, 0.0, 0.05, 0.0], query=f"q{i}") for i in range(3)]
    config = PairConfig(positive_threshold=0.3, max_positives=3, negatives_per_positive=2, seed=1)
    columns = regression_pairs(items, config)
    assert len(columns["query"]) == 3 * (1 + 2)  # one positive and two others per query
    assert columns["label"].count(0.5) == 3
    assert columns == regression_pairs(items, config)  # seeded: the same pairs every time
    everything = regression_pairs(items, PairConfig(positive_threshold=0.3, negatives_per_positive=None))
    assert len(everything["query"]) == 3 * 8
    capped = regression_pairs(items, PairConfig(positive_threshold=0.3, negatives_per_positive=None, max_pairs=5))
    assert len(capped["query"]) == 5 and set(capped["passage"]) <= set(everything["passage"])
    # a query without positives still gives `negatives_per_positive` pairs (the model must learn low scores)
    assert len(regression_pairs([_labelled([0.0, 0.1, 0.0])], config)["query"]) == 2


@pytest.mark.parametrize("how", ["bm25", "label", "random"])
def test_dpr_triples_pair_each_positive_with_its_own_hard_negative(how):
    item = _labelled([0.9, 0.0, 0.6, 0.02, 0.12, 0.01], query="the budget")
    config = PairConfig(positive_threshold=0.5, max_positives=5, hard_negatives=how)
    columns = dpr_triples([item, _labelled([0.0, 0.1], query="nothing relevant")], config)
    texts = [s.text for s in item.segments]
    assert columns["query"] == ["the budget", "the budget"]
    assert columns["positive"] == [texts[0], texts[2]]
    negatives = [texts.index(n) for n in columns["negative"]]
    assert len(set(negatives)) == 2 and all(item.labels[i] < 0.25 for i in negatives)  # below threshold / 2
    if how == "label":
        assert negatives == [4, 3]  # highest labels under the ceiling first
    if how == "bm25":
        assert all(i % 2 == 1 for i in negatives)  # the segments that say "budget" match the query best


def test_pair_config_validation():
    with pytest.raises(QfsumError, match="hard negatives"):
        PairConfig(hard_negatives="dense")
    with pytest.raises(QfsumError, match="max-pairs"):
        PairConfig(max_pairs=0)
    with pytest.raises(QfsumError, match="unknown extractor kind"):
        ExtractorTrainingConfig(kind="colbert", data="d", out="o")


def test_validation_sample_takes_whole_documents(training_root):
    examples = read_examples(training_root, "train")  # 6 meetings x 4 queries
    chosen = sample_examples(examples, 8, seed=3)
    assert len(chosen) == 8 and len({id(e.document) for e in chosen}) == 2
    assert [examples.index(e) for e in chosen] == sorted(examples.index(e) for e in chosen)
    assert sample_examples(examples, None) == examples and sample_examples(examples, 100) == examples


# -- training -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_trains_and_its_loss_goes_down(trained, kind):
    config, run = trained[kind]
    losses = [row["loss"] for row in run["train_loss"]]
    per_epoch = len(losses) // 4
    assert per_epoch >= 3
    first, last = np.mean(losses[:per_epoch]), np.mean(losses[-per_epoch:])
    assert last < 0.9 * first, (first, last)
    assert run["status"] == "done" and run["step"] == len(losses)
    out = Path(config.out)
    assert not (out / "checkpoints").exists() and not (out / "best").exists()  # cleaned up
    card = (out / "README.md").read_text()
    assert f"qfsum train extractor --kind {kind}" in card and "| step |" in card and "(kept)" in card
    assert json.loads((out / "qfsum_training.json").read_text())["status"] == "done"
    assert encoder_type(out) == ("cross-encoder" if kind == "relreg" else "bi-encoder")
    saved = json.loads((out / "config_sentence_transformers.json").read_text())
    if kind == "relreg":
        assert saved["activation_fn"] == "torch.nn.modules.linear.Identity"  # scores are regressed labels
    else:
        assert saved["prompts"] == {"query": "query: ", "passage": "passage: "}
        assert "Normalize" in (out / "modules.json").read_text()


@pytest.mark.parametrize("kind", KINDS)
def test_the_kept_model_is_the_best_on_validation(trained, kind):
    from sentence_transformers import CrossEncoder, SentenceTransformer

    config, run = trained[kind]
    assert len(run["history"]) >= 3  # every 10 steps and at the end
    best = max(run["history"], key=lambda h: h["top1_rouge1"])
    assert run["best"]["step"] == min(h["step"] for h in run["history"] if h["top1_rouge1"] == best["top1_rouge1"])
    model = (CrossEncoder if kind == "relreg" else SentenceTransformer)(config.out, device="cpu")
    again = _validation(config, progress=False)(model)
    for key, value in again.items():
        assert value == pytest.approx(run["best"][key], abs=1e-6), key
    assert "span_recall" in again


@pytest.mark.parametrize("kind", KINDS)
def test_save_and_load_round_trip_gives_identical_scores(trained, kind, tmp_path):
    config, _ = trained[kind]
    scorer_config = scorer_config_for_model(config.out)
    assert scorer_config.kind == ("relreg" if kind == "relreg" else "dense")
    scorer_config.dtype = "float32"
    example = read_examples(config.data, "val")[0]
    segments = Segmenter()(example.document)
    scores = build_scorer(scorer_config).score(example.query, segments)
    assert scores.shape == (len(segments),) and np.isfinite(scores).all() and np.ptp(scores) > 0

    pipeline = Pipeline(PipelineConfig(scorer=scorer_config, writer=WriterConfig(kind="extractive")))
    loaded = Pipeline.load(pipeline.save(tmp_path / "pipeline"))
    assert loaded.config.scorer.model == str((tmp_path / "pipeline" / "models" / "scorer").resolve())
    np.testing.assert_array_equal(loaded.scorer.score(example.query, segments), scores)

    if kind != "relreg":  # the saved prompts are applied: the same as encoding with the markers by hand
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(config.out, device="cpu")
        query = model.encode(["query: " + example.query], normalize_embeddings=True)[0]
        passages = model.encode(["passage: " + s.text for s in segments], normalize_embeddings=True)
        np.testing.assert_allclose(passages @ query, scores, atol=1e-5)


@pytest.mark.parametrize("kind", ["relreg", "dpr"])
def test_export_writes_a_half_precision_extractor_that_scores_like_the_run(capsys, trained, kind, tmp_path):
    from conftest import cli
    from safetensors.torch import load_file

    config, _ = trained[kind]
    shipped = tmp_path / "shipped"
    code, out, err = cli(capsys, "train", "export", "--model", config.out, "--out", shipped)
    assert code == 0, err
    weights = load_file(shipped / "model.safetensors")
    assert all(t.dtype == torch.float16 for t in weights.values() if t.is_floating_point())
    assert not (shipped / "checkpoints").exists() and (shipped / "qfsum_training.json").exists()
    assert "float16" in (shipped / "README.md").read_text()

    example = read_examples(config.data, "val")[0]
    segments = Segmenter()(example.document)
    scores = {}
    for folder in (config.out, shipped):
        scorer_config = scorer_config_for_model(folder)
        scorer_config.dtype = "float32"
        scores[folder] = build_scorer(scorer_config).score(example.query, segments)
    np.testing.assert_allclose(scores[shipped], scores[config.out], atol=2e-3)


class _Interrupt(TrainerCallback):
    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.at:
            raise KeyboardInterrupt


class _Steps(TrainerCallback):
    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


@pytest.mark.parametrize("kind", ["relreg", "dpr"])
def test_resume_continues_from_the_saved_step(training_root, tiny_bert_dir, tmp_path, kind):
    from safetensors.torch import load_file

    def config(out: str) -> ExtractorTrainingConfig:
        return _config(kind, training_root, tmp_path / out, tiny_bert_dir, epochs=2, save_steps=5, val_split=None)

    whole = train_extractor(config("whole"), progress=False)
    with pytest.raises(KeyboardInterrupt):
        train_extractor(config("cut"), progress=False, callbacks=[_Interrupt(at=7)])
    state = json.loads((tmp_path / "cut" / "qfsum_training.json").read_text())
    assert state["status"] == "training" and state["step"] == 5
    assert [p.name for p in (tmp_path / "cut" / "checkpoints").iterdir()] == ["checkpoint-5"]

    steps = _Steps()
    resumed = train_extractor(config("cut"), progress=False, callbacks=[steps])
    assert steps.steps[0] == 6 and resumed["step"] == whole["step"] and resumed["sessions"] == 2
    assert [r["loss"] for r in resumed["train_loss"]] == [r["loss"] for r in whole["train_loss"]]
    a, b = load_file(tmp_path / "whole" / "model.safetensors"), load_file(tmp_path / "cut" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)  # the same model as an uninterrupted run


def test_a_finished_run_is_reported_not_retrained(trained):
    config, run = trained["dpr"]
    steps = _Steps()
    again = train_extractor(config, progress=False, callbacks=[steps])
    assert again["reported"] and steps.steps == [] and again["best"] == run["best"]


def test_an_out_dir_of_another_run_is_refused(trained, tmp_path):
    config, _ = trained["relreg"]
    other = ExtractorTrainingConfig(**{**config.__dict__, "lr": 5e-4})
    with pytest.raises(QfsumError, match="holds another training run"):
        train_extractor(other, progress=False)
    (tmp_path / "stuff.txt").write_text("not a run")
    with pytest.raises(QfsumError, match="is not empty"):
        train_extractor(ExtractorTrainingConfig(**{**config.__dict__, "out": str(tmp_path)}), progress=False)


# -- scorers ------------------------------------------------------------------------------------------


class StubCrossEncoder:
    device = torch.device("cpu")

    def __init__(self):
        self.calls = []

    def predict(self, pairs, batch_size=32, show_progress_bar=None, convert_to_numpy=True):
        self.calls.append((list(pairs), batch_size))
        return np.array([float(p[1].count(p[0])) for p in pairs], dtype=np.float32)


def _segments(texts):
    return [Segment(i, t, 0, len(t)) for i, t in enumerate(texts)]


def test_cross_encoder_scorer_scores_query_segment_pairs(monkeypatch):
    import qfsum.retrieval.cross as cross

    stub = StubCrossEncoder()
    monkeypatch.setattr(cross, "load_cross_encoder", lambda name: stub)
    scorer = build_scorer(ScorerConfig(kind="relreg", model="my-relreg", batch_size=7))
    assert isinstance(scorer, CrossEncoderScorer)
    scores = scorer.score("budget", _segments(["no", "budget budget", "budget"]))
    assert scores.dtype == np.float32 and scores.tolist() == [0.0, 2.0, 1.0]
    assert stub.calls == [([("budget", "no"), ("budget", "budget budget"), ("budget", "budget")], 7)]
    assert scorer.score("budget", []).shape == (0,)


class PromptedEncoder:
    """A bi-encoder stub that defines prompts and records which prompt each call used."""

    device = torch.device("cpu")

    def __init__(self, prompts):
        self.prompts = prompts
        self.used = []

    def encode(self, texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True, prompt_name=None):
        self.used.append(prompt_name)
        return np.ones((len(texts), 2), dtype=np.float32) / np.sqrt(2)


@pytest.mark.parametrize(
    "prompts, expected",
    [
        ({"query": "query: ", "passage": "passage: "}, ["passage", "query"]),
        ({"query": "q: ", "document": "d: "}, ["document", "query"]),
        ({"query": "", "document": ""}, [None, None]),  # sentence-transformers' empty defaults: no prompt
    ],
)
def test_dense_scorer_uses_the_models_query_and_passage_prompts(prompts, expected):
    encoder = PromptedEncoder(prompts)
    DenseScorer(encoder=encoder).score("q", _segments(["a", "b"]))
    assert encoder.used == expected


def test_encoder_type_from_saved_files(tmp_path):
    def folder(name, files):
        path = tmp_path / name
        path.mkdir()
        for file, content in files.items():
            (path / file).write_text(json.dumps(content))
        return path

    assert encoder_type(folder("ce", {"config_sentence_transformers.json": {"model_type": "CrossEncoder"}})) == "cross-encoder"
    assert encoder_type(folder("st", {"config_sentence_transformers.json": {"model_type": "SentenceTransformer"}})) == "bi-encoder"
    assert encoder_type(folder("old-st", {"modules.json": []})) == "bi-encoder"
    legacy = folder("legacy-ce", {"config.json": {"architectures": ["BertForSequenceClassification"]}})
    assert encoder_type(legacy) == "cross-encoder" and scorer_config_for_model(legacy).kind == "relreg"
    assert encoder_type(folder("bert", {"config.json": {"architectures": ["BertModel"]}})) is None
    with pytest.raises(QfsumError, match="neither a pipeline nor"):
        scorer_config_for_model(folder("empty", {}))


# -- the two-stage pipeline -----------------------------------------------------------------------------


def test_two_stage_pipeline_respects_the_token_budget_exactly(trained, tiny_causal_dir, tmp_path):
    config, _ = trained["relreg"]
    budget = 110
    pipeline = Pipeline(PipelineConfig(
        name="two-stage",
        scorer=ScorerConfig(kind="relreg", model=config.out, dtype="float32"),
        writer=WriterConfig(kind="generative", model=str(tiny_causal_dir), input_tokens=budget, max_new_tokens=4),
    ))
    writer = pipeline.writer
    for example in read_examples(config.data, "val"):
        ranked = pipeline.rank(example.document, example.query)
        total = sum(writer.counter.count(e.segment.text) for e in ranked)
        ids, evidence = writer.prompt(example.query, ranked)
        assert total > budget  # the document does not fit: the budget decides
        assert budget - 2 <= len(ids) <= budget  # filled to the budget, never over it
        assert ids == writer._prompt_ids("\n".join(e.segment.text for e in evidence), example.query)
        starts = [e.segment.start for e in evidence]
        assert starts == sorted(starts)  # document order
        chosen = {e.segment.index for e in evidence}
        assert chosen == {e.segment.index for e in ranked[: len(evidence)]}  # the extractor's best ones
    example = read_examples(config.data, "val")[0]
    before = pipeline.summarize(example.document, example.query)
    after = Pipeline.load(pipeline.save(tmp_path / "two-stage")).summarize(example.document, example.query)
    assert after.text == before.text and [e.to_dict() for e in after.evidence] == [e.to_dict() for e in before.evidence]


# -- command line ---------------------------------------------------------------------------------------


def test_cli_train_then_evaluate_extractor(capsys, training_root, tiny_bert_dir, tmp_path):
    out = tmp_path / "relregtt"
    args = ["train", "extractor", "--kind", "relregtt", "--data", training_root, "--base", tiny_bert_dir,
            "--out", out, "--max-pairs", "40", "--epochs", "1", "--batch-size", "8", "--lr", "1e-3",
            "--positive-threshold", "0.3", "--val-limit", "4", "--val-tokenizer", "words", "--dtype", "float32",
            "--workers", "1", "--no-progress"]
    code, stdout, err = cli(capsys, *args)
    assert code == 0, err
    assert "relregtt: 5 steps on 40 training rows in" in stdout and "best on validation" in stdout
    card = (out / "README.md").read_text()
    assert "qfsum train extractor --kind relregtt" in card and "--max-pairs 40" in card
    code, stdout, err = cli(capsys, *args)  # the same command again: already trained
    assert code == 0 and "already trained" in stdout

    code, stdout, err = cli(capsys, "evaluate-extractor", "--data", training_root, "--split", "val", "--scorer", out,
                            "--tokenizer", "words", "--budget", "30", "--out", tmp_path / "eval", "--no-progress")
    assert code == 0, err
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["n"] == 8 and 0 < metrics["top1_rouge1"] <= 100 and "span_recall" in metrics


def test_cli_train_without_validation_keeps_the_last_model(capsys, training_root, tiny_bert_dir, tmp_path):
    code, stdout, err = cli(capsys, "train", "extractor", "--kind", "relreg", "--data", training_root, "--base",
                            tiny_bert_dir, "--out", tmp_path / "out", "--val-split", "none", "--max-steps", "3",
                            "--dtype", "float32", "--workers", "1", "--no-progress")
    assert code == 0, err
    assert "relreg: 3 steps" in stdout and "best on validation" not in stdout
    assert encoder_type(tmp_path / "out") == "cross-encoder"
    assert "No validation" in (tmp_path / "out" / "README.md").read_text()


def test_cli_evaluate_extractor_detects_a_cross_encoder(capsys, trained, tmp_path):
    config, _ = trained["relreg"]
    code, stdout, err = cli(capsys, "evaluate-extractor", "--data", config.data, "--split", "val", "--scorer",
                            config.out, "--tokenizer", "words", "--out", tmp_path / "eval", "--no-progress")
    assert code == 0, err
    assert "top1" in stdout and json.loads((tmp_path / "eval" / "metrics.json").read_text())["n"] == 8


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--negatives-per-positive", "lots"], "--negatives-per-positive must be a number or 'all'"),
        (["--segment", "paragraph"], "unknown segmenter 'paragraph'"),
        (["--label-metrics", "rouge1,bleu"], "unknown label metric 'bleu'"),
        (["--batch-size", "0"], "batch size must be >= 1"),
        (["--base", "no-such-model"], "unknown model 'no-such-model'"),
    ],
)
def test_cli_train_user_errors(capsys, training_root, tmp_path, extra, message):
    code, _, err = cli(capsys, "train", "extractor", "--kind", "relreg", "--data", training_root,
                       "--out", tmp_path / "out", "--val-tokenizer", "words", "--workers", "1", "--no-progress", *extra)
    assert message in assert_one_error_line(code, err)


def test_cli_train_on_a_file_needs_separate_validation_data(capsys, tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl")
    code, _, err = cli(capsys, "train", "extractor", "--kind", "dpr", "--data", data, "--out", tmp_path / "out")
    assert "--val-data" in assert_one_error_line(code, err)


def test_cli_evaluate_extractor_with_a_folder_that_is_no_model(capsys, qmsum_root, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = cli(capsys, "evaluate-extractor", "--data", qmsum_root, "--split", "val", "--scorer",
                       tmp_path / "empty", "--tokenizer", "words", "--out", tmp_path / "eval")
    assert "neither a pipeline nor a sentence-transformers model" in assert_one_error_line(code, err)
