"""Training relevance extractors: RelReg (cross-encoder), RelRegTT (two towers) and DPR.

All three learn from ROUGE relevance labels (`labels`) with the sentence-transformers
trainers (Hugging Face `Trainer` underneath: checkpoints, resuming, mixed precision):

- relreg: a `CrossEncoder` reads `query [SEP] segment` and regresses the label (MSE).
- relregtt: one shared `SentenceTransformer` encodes "query: ..." and "passage: ..."; the inner
  product of the unit-normalized pooled embeddings regresses the label (MSE on the cosine).
- dpr: the same two-tower model trained with the negative log-likelihood of the positive against
  in-batch negatives and one hard negative per pair (MultipleNegativesRankingLoss).

The output directory is a sentence-transformers model directory that `ScorerConfig(kind="relreg")`
or `ScorerConfig(kind="dense")` loads (see `retrieval.base.scorer_config_for_model`), plus a model
card (`README.md`) and `qfsum_training.json`. While training, `checkpoints/` holds the last
checkpoint (rerunning the same command resumes from it) and `best/` the best model on validation.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import torch
import transformers
from sentence_transformers import (
    CrossEncoder,
    CrossEncoderTrainer,
    CrossEncoderTrainingArguments,
    SentenceTransformer,
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
)
from sentence_transformers.base.modules.normalize import Normalize
from sentence_transformers.base.sampler import BatchSamplers
from sentence_transformers.cross_encoder.losses import MSELoss
from sentence_transformers.sentence_transformer.losses import (
    CosineSimilarityLoss,
    MultipleNegativesRankingLoss,
)

from ...assets import (
    cache_dir,
    default_device,
    load_tokenizer,
    require_safetensors,
    resolve,
    resolve_dtype,
)
from ...budget import TokenizerCounter, WordCounter
from ...document import Example, Segment
from ...errors import QfsumError
from ...readers import read_examples
from ...segment import Segmenter, SegmenterConfig
from ..common.card import write_model_card
from ..common.config import RunConfig
from ..common.runs import last_checkpoint, machine, new_session, previous_run, write_run
from ..common.trainer import (
    BEST,
    CHECKPOINTS,
    LossProgress,
    RunBookkeeping,
    drop_default_progress,
    keep_best,
    sample_examples,
    trainer_arguments,
)
from .labels import LABEL_METRICS, check_metrics, load_or_build_labels
from .pairs import Labelled, PairConfig, dpr_triples, positives, regression_pairs
from .validation import PRIMARY_METRIC, REPORTED, ExtractorEvaluator

KINDS = ("relreg", "relregtt", "dpr")
PROMPTS = {"query": "query: ", "passage": "passage: "}  # the towers' markers, saved with the model


@dataclass
class ExtractorTrainingConfig(RunConfig):
    """One training run of an extractor; every field but `out` and `label_workers` identifies the run."""

    NOT_IDENTITY = ("out", "label_workers")  # how many processes label does not change the labels

    kind: str  # relreg | relregtt | dpr
    data: str  # QMSum root, folder of meetings, meeting file or JSONL file
    out: str  # output directory
    split: str | None = "train"
    val_split: str | None = "val"  # None: no validation (the last model is kept)
    val_data: str | None = None  # None: the same as `data`
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    base: str = "minilm"  # packaged name, local directory or hub id of the starting encoder
    label_metrics: tuple[str, ...] = LABEL_METRICS
    pairs: PairConfig = field(default_factory=PairConfig)
    epochs: float = 1.0
    max_steps: int | None = None  # stop after this many optimizer steps (overrides epochs)
    batch_size: int = 16
    lr: float = 2e-5
    warmup: float = 0.1  # fraction of the steps with a linearly rising learning rate
    max_length: int | None = None  # tokens per input (relreg: query + segment); None = the model's own
    log_steps: int = 10  # loss shown (and logged) every this many steps
    eval_steps: int = 500  # validation every this many steps, and at the end
    save_steps: int = 200  # checkpoint every this many steps
    val_limit: int | None = 50  # validation examples (whole documents, drawn at random); None = all
    val_budget: int = 1024  # tokens of the "topall" selection whose span recall is reported
    val_tokenizer: str = "smollm2"  # counts the budget, as `qfsum evaluate-extractor` does; or "words"
    dtype: str = "auto"  # auto: bf16 mixed precision where the hardware has it; float32
    seed: int = 0
    label_workers: int | None = None  # processes that build labels; None = all cores

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise QfsumError(f"unknown extractor kind '{self.kind}' (choose from {', '.join(KINDS)})")
        self.label_metrics = check_metrics(self.label_metrics)
        self.require_counts("batch_size", "log_steps", "eval_steps", "save_steps", "val_budget")
        self.require_length()
        if self.lr <= 0:
            raise QfsumError(f"learning rate must be > 0, got {self.lr}")
        self.require_dtype()

    def identity(self) -> dict[str, Any]:
        """What must match for a rerun to resume this run (the metrics as the JSON record holds them)."""
        return {**super().identity(), "label_metrics": list(self.label_metrics)}


# -- data -------------------------------------------------------------------------------------------


def labelled_examples(
    examples: Sequence[Example], config: ExtractorTrainingConfig, progress: bool = True
) -> list[Labelled]:
    """Every example with its segments and their (cached) ROUGE labels."""
    labels = load_or_build_labels(
        examples, config.segmenter, config.label_metrics, config.label_workers, progress=progress
    )
    segment = Segmenter(config.segmenter)
    segments: dict[int, list[Segment]] = {}
    items = []
    for example in examples:
        if id(example.document) not in segments:
            segments[id(example.document)] = segment(example.document)
        doc_segments = segments[id(example.document)]
        if len(doc_segments) != len(labels[example.id]):
            raise QfsumError(f"{example.id}: cached labels do not match the segments; remove {cache_dir() / 'labels'}")
        items.append(Labelled(example, doc_segments, labels[example.id]))
    return items


def training_columns(items: Sequence[Labelled], config: ExtractorTrainingConfig) -> dict[str, list]:
    """The training table of the run's kind (see `pairs`)."""
    if config.kind == "dpr":
        columns = dpr_triples(items, config.pairs)
    else:
        columns = regression_pairs(items, config.pairs)
    if not columns["query"]:
        hint = " (no segment reaches --positive-threshold)" if config.kind == "dpr" else ""
        raise QfsumError(f"no training pairs{hint}")
    return columns


# -- models and losses ------------------------------------------------------------------------------


def build_model(config: ExtractorTrainingConfig) -> CrossEncoder | SentenceTransformer:
    """The starting model: a cross-encoder with one regression output, or a normalized bi-encoder
    carrying the query/passage prompts."""
    ref = resolve(config.base)
    require_safetensors(ref.location)
    safe = {"use_safetensors": True}  # never unpickle a checkpoint: it can run code
    try:
        if config.kind == "relreg":
            # Identity activation: predictions are regressed labels, not squashed by a sigmoid.
            return CrossEncoder(ref.location, num_labels=1, max_length=config.max_length,
                                activation_fn=torch.nn.Identity(), device=default_device(), model_kwargs=safe)
        model = SentenceTransformer(ref.location, device=default_device(), model_kwargs=safe)
    except (OSError, ValueError) as err:
        raise QfsumError(f"cannot load base model '{config.base}': {str(err).splitlines()[0][:300]}") from None
    if not any(isinstance(module, Normalize) for module in model):
        model.append(Normalize())  # unit vectors: the inner product is the cosine the dense scorer uses
    model.prompts = dict(PROMPTS)
    model.default_prompt_name = None
    if config.max_length:
        model.max_seq_length = config.max_length
    return model


def build_loss(model: Any, kind: str) -> torch.nn.Module:
    """MSE on the score (relreg) or on the towers' inner product (relregtt); in-batch NLL (dpr)."""
    if kind == "relreg":
        return MSELoss(model)
    if kind == "relregtt":
        return CosineSimilarityLoss(model)  # MSE(cos(q, p), label); embeddings are unit vectors, so cos = q . p
    return MultipleNegativesRankingLoss(model)


def column_prompts(kind: str) -> dict[str, str] | None:
    """The trainer's prompt per dataset column (the towers' markers); none for the cross-encoder."""
    if kind == "relreg":
        return None
    if kind == "relregtt":
        return {"query": PROMPTS["query"], "passage": PROMPTS["passage"]}
    return {"query": PROMPTS["query"], "positive": PROMPTS["passage"], "negative": PROMPTS["passage"]}


# -- training ----------------------------------------------------------------------------------------


def _validation(config: ExtractorTrainingConfig, progress: bool) -> ExtractorEvaluator | None:
    """The validator of a run: a sample of whole validation documents, scored as evaluate-extractor does."""
    if not config.val_split:
        return None
    examples = read_examples(config.val_data or config.data, config.val_split)
    examples = sample_examples([e for e in examples if e.references], config.val_limit, config.seed)
    if not examples:
        raise QfsumError("no validation examples with a reference summary")
    counter = WordCounter() if config.val_tokenizer == "words" else TokenizerCounter(load_tokenizer(config.val_tokenizer))
    return ExtractorEvaluator(examples, config.segmenter, counter, config.val_budget, config.batch_size * 2,
                              progress=progress)


def _arguments(config: ExtractorTrainingConfig, out: Path, validate: bool) -> Any:
    common = trainer_arguments(config, out, validate, resolve_dtype(config.dtype))
    if config.kind == "relreg":
        return CrossEncoderTrainingArguments(**common)
    # DPR: a query with several positives must not meet itself in a batch (a false in-batch negative).
    sampler = BatchSamplers.NO_DUPLICATES if config.kind == "dpr" else BatchSamplers.BATCH_SAMPLER
    return SentenceTransformerTrainingArguments(**common, prompts=column_prompts(config.kind), batch_sampler=sampler)


def _trainer(config: ExtractorTrainingConfig, model: Any, dataset: Any, evaluator: Any, args: Any, callbacks: list) -> Any:
    cls = CrossEncoderTrainer if config.kind == "relreg" else SentenceTransformerTrainer
    return drop_default_progress(cls(model=model, args=args, train_dataset=dataset, loss=build_loss(model, config.kind),
                                     evaluator=evaluator, callbacks=callbacks))


def train_extractor(
    config: ExtractorTrainingConfig, progress: bool = True, command: str | None = None, callbacks: Sequence[Any] = ()
) -> dict[str, Any]:
    """Train (or resume, or just report) the run `config` describes; return its run record.

    A finished run in `config.out` is reported, not retrained; an unfinished one resumes from its
    last checkpoint; a directory that holds another run is refused. `command` is shown in the
    model card; `callbacks` are extra `transformers.TrainerCallback`s.
    """
    out = Path(config.out)
    previous = previous_run(out, config.identity())
    if previous is not None and previous.get("status") == "done":
        return {**previous, "reported": True}  # finished before: nothing to do
    resolve(config.base)  # fail now, not after minutes of labelling, on a model that cannot be found
    evaluator = _validation(config, progress)
    examples = [e for e in read_examples(config.data, config.split) if e.references]
    if not examples:
        raise QfsumError("no training examples with a reference summary")
    items = labelled_examples(examples, config, progress)
    columns = training_columns(items, config)
    run = new_session(out, previous, config.identity(), command)
    run["data"] = {
        "examples": len(examples),
        "documents": len({id(e.document) for e in examples}),
        "segments": sum(len(i.segments) for i in items),
        "positives": int(sum(len(positives(i.labels, config.pairs)) for i in items)),
        "rows": len(columns["query"]),
        "validation_examples": len(evaluator.examples) if evaluator else 0,
    }
    run["machine"] = machine()
    write_run(out, run)

    transformers.set_seed(config.seed)  # the fresh head of the cross-encoder: same run, same start
    model = build_model(config)
    started = time.perf_counter()
    bookkeeping = RunBookkeeping(run, out / BEST, _save, REPORTED, PRIMARY_METRIC, lambda: write_run(out, run),
                                 lambda: run["seconds_before"] + time.perf_counter() - started)
    trainer = _trainer(config, model, datasets.Dataset.from_dict(columns), evaluator,
                       _arguments(config, out, evaluator is not None),
                       [bookkeeping, *([LossProgress(REPORTED)] if progress else []), *callbacks])
    checkpoint = last_checkpoint(out / CHECKPOINTS)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    if evaluator is not None and not any(h["step"] == trainer.state.global_step for h in run["history"]):
        trainer.evaluate()  # the end of training is always validated (and may be the best)
    return _finish(out, run, trainer, config, started)


def _finish(out: Path, run: dict[str, Any], trainer: Any, config: ExtractorTrainingConfig, started: float) -> dict[str, Any]:
    """Put the best (or, without validation, the last) model at the top of `out`; write the card."""
    keep_best(out, lambda: _save(trainer.model, out))
    run["status"] = "done"
    run["step"] = trainer.state.global_step
    run["seconds"] = run["seconds_before"] + time.perf_counter() - started
    run["train_loss"] = [
        {"step": h["step"], "loss": h["loss"]} for h in trainer.state.log_history if "loss" in h
    ]
    write_run(out, run)
    write_model_card(out, run, "extractor")
    return run


def _save(model: Any, folder: Path) -> None:
    """A sentence-transformers model folder (our card is written at the end, not theirs)."""
    model.save(str(folder), create_model_card=False)
