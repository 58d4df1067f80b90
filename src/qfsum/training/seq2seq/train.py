"""A generic seq2seq trainer: teacher forcing on (query, document) -> summary, validated by ROUGE.

Works with any model that has the Hugging Face seq2seq interface (`forward(**inputs,
decoder_input_ids, labels)` returning `logits`, and `generate(**inputs)`): BART, T5, LED, SegEnc,
LOCOST. The architecture decides how the model is loaded and how it reads its input (see
`ARCHS`); the training loop is the Hugging Face `Trainer`'s:

- teacher forcing with label smoothing (`label_smoothing`), AdamW with linear warmup and decay;
- gradient accumulation (`grad_accum`), gradient checkpointing (`grad_checkpointing`), bf16 mixed
  precision where the hardware has it (`dtype="auto"`: recent GPUs);
- every `eval_steps` and at the end, validation generates summaries for `val_limit` validation
  examples (beam search, `num_beams`) and scores them with ROUGE; the best model by `rouge_mean`
  (the mean of ROUGE-1, ROUGE-2 and ROUGE-Lsum F1, the papers' R-1/R-2/R-L) is kept;
- a checkpoint every `save_steps`: rerunning the same command resumes from the last one;
- `init`: start from a model fine-tuned on another data set (e.g. WikiSum) instead of `base`.

API:

>>> config = Seq2SeqTrainingConfig(arch="segenc", base="facebook/bart-large", data="data/qmsum", out="runs/segenc")  # doctest: +SKIP
>>> run = train_seq2seq(config)  # doctest: +SKIP

`run` is the run record also written to `out/qfsum_training.json` (validation history, best step,
losses). `out` then holds the model and tokenizer (Hugging Face format), a `pipeline.json` (so
`qfsum summarize/evaluate --pipeline out` use it), and a model card `README.md`.

A new architecture registers a loader in `ARCHS`: a function of the config returning a
`qfsum.writers.seq2seq_writers.Seq2SeqModel` (model, tokenizer, input builder, writer kind).
Or pass a ready `Seq2SeqModel` as `train_seq2seq(config, model=...)`.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TYPE_CHECKING

import torch
import transformers
from transformers import Trainer, TrainerCallback, TrainingArguments

from ...assets import default_device, resolve, resolve_dtype
from ...document import Example
from ...errors import QfsumError
from ...evaluation.rouge import mean_scores, rouge
from ...models.seq2seq_inputs import InputBuilder, pad
from ...readers import read_examples
from ...segment import Segmenter
from ...writers.seq2seq_writers import (
    GenerationSettings,
    Seq2SeqModel,
    generate_texts,
    load_seq2seq,
)
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

if TYPE_CHECKING:  # annotations only: transformers loads when a model does
    from transformers import PreTrainedTokenizerBase

# architecture -> "module:loader"; the loader takes a Seq2SeqTrainingConfig and returns a Seq2SeqModel.
ARCHS: dict[str, str] = {
    "segenc": "qfsum.training.seq2seq.train:load_builtin",
    "led": "qfsum.training.seq2seq.train:load_builtin",
    "plain": "qfsum.training.seq2seq.train:load_builtin",
}
PRIMARY_METRIC = "rouge_mean"
REPORTED = ("rouge1", "rouge2", "rougeL", "rougeLsum", PRIMARY_METRIC)


@dataclass
class Seq2SeqTrainingConfig(RunConfig):
    """One training run; every field but `out` identifies the run (a rerun must match to resume)."""

    arch: str  # a key of ARCHS: segenc | led | plain
    base: str  # starting encoder-decoder: local directory or hub id (facebook/bart-large, allenai/led-base-16384)
    data: str  # QMSum root, folder of meetings, meeting file or JSONL file
    out: str  # output directory
    init: str | None = None  # start from this fine-tuned checkpoint (another data set) instead of `base`
    split: str | None = "train"
    val_split: str | None = "val"  # None: no validation (the last model is kept)
    val_data: str | None = None  # None: the same as `data`
    max_input: int = 16384  # document tokens read at most (led/plain: also capped at the model's limit)
    segment_length: int = 512  # segenc: tokens per window, query included
    overlap: bool = True  # segenc: windows overlap by half (False: disjoint)
    max_target: int = 256  # reference tokens learned at most
    epochs: float = 10.0
    max_steps: int | None = None  # stop after this many optimizer steps (overrides epochs)
    batch_size: int = 1  # examples per forward pass
    grad_accum: int = 1  # forward passes per optimizer step
    lr: float = 5e-6
    warmup: float = 0.0  # fraction of the steps with a linearly rising learning rate
    weight_decay: float = 0.0
    label_smoothing: float = 0.1
    grad_checkpointing: bool = False  # recompute activations in the backward pass: less memory, ~30 % slower
    dtype: str = "auto"  # auto: bf16 mixed precision where the hardware has it; float32
    log_steps: int = 10
    eval_steps: int = 500  # validation every this many steps, and at the end
    save_steps: int = 200  # checkpoint every this many steps
    val_limit: int | None = 50  # validation examples (whole documents, drawn at random); None = all
    num_beams: int = 4  # validation decoding
    max_new_tokens: int = 256  # validation decoding
    seed: int = 0

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise QfsumError(f"unknown architecture '{self.arch}' (choose from {', '.join(ARCHS)})")
        self.require_counts("max_input", "max_target", "batch_size", "grad_accum", "log_steps", "eval_steps",
                            "save_steps", "num_beams", "max_new_tokens")
        if self.segment_length < 8:
            raise QfsumError(f"segment length must be >= 8, got {self.segment_length}")
        self.require_length()
        if self.lr <= 0 or not 0 <= self.label_smoothing < 1 or not 0 <= self.warmup < 1:
            raise QfsumError("need lr > 0, label smoothing in [0, 1) and warmup in [0, 1)")
        self.require_dtype()


def load_builtin(config: Seq2SeqTrainingConfig) -> Seq2SeqModel:
    """The segenc, led and plain architectures, from `init` or else `base`."""
    windows = {"segment_length": config.segment_length, "overlap": config.overlap}
    return load_seq2seq(config.arch, config.init or config.base, "float32", config.max_input, windows)


def load_model(config: Seq2SeqTrainingConfig) -> Seq2SeqModel:
    """The model of a run, as its architecture's loader in `ARCHS` builds it."""
    module, _, function = ARCHS[config.arch].partition(":")
    return getattr(importlib.import_module(module), function)(config)


# -- data -------------------------------------------------------------------------------------------


def document_pairs(examples: Sequence[Example]) -> list[tuple[str, str]]:
    """(query, document text) per example, the document as end-to-end pipelines read it: every
    speaker turn or paragraph, in order, one per line."""
    segment = Segmenter()  # turns: what the pipelines written by this trainer use
    texts: dict[int, str] = {}
    pairs = []
    for example in examples:
        if id(example.document) not in texts:
            texts[id(example.document)] = "\n".join(s.text for s in segment(example.document))
        pairs.append((example.query, texts[id(example.document)]))
    return pairs


def encode_examples(
    examples: Sequence[Example], inputs: InputBuilder, tokenizer: PreTrainedTokenizerBase, max_target: int, progress: bool = False
) -> list[dict[str, Any]]:
    """Model inputs plus `labels` (the first reference, cut at `max_target` tokens) per example."""
    from tqdm.auto import tqdm

    features = []
    pairs = document_pairs(examples)
    for example, (query, document) in tqdm(list(zip(examples, pairs)), desc="encode", unit="ex", leave=False,
                                           disable=not progress):
        feature = inputs.encode(query, document)
        feature["labels"] = tokenizer(example.references[0], max_length=max_target, truncation=True)["input_ids"]
        features.append(feature)
    return features


class Seq2SeqCollator:
    """Pads a batch: the builder's inputs, `labels` padded with -100 (ignored by the loss), and
    `decoder_input_ids` (the labels shifted right), so label smoothing can take the labels away."""

    def __init__(self, inputs: InputBuilder, shift: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.inputs, self.shift = inputs, shift

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.inputs.collate([{k: v for k, v in f.items() if k != "labels"} for f in features])
        batch["labels"] = pad([f["labels"] for f in features], -100)
        batch["decoder_input_ids"] = self.shift(batch["labels"])
        return batch


def shift_right(model: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model's labels -> decoder inputs shift (its own where it has one)."""
    if hasattr(model, "prepare_decoder_input_ids_from_labels"):
        return lambda labels: model.prepare_decoder_input_ids_from_labels(labels=labels)
    start, pad_id = model.config.decoder_start_token_id, model.config.pad_token_id

    def shift(labels: torch.Tensor) -> torch.Tensor:
        shifted = torch.full_like(labels, start)
        shifted[:, 1:] = labels[:, :-1]
        return shifted.masked_fill(shifted == -100, pad_id)

    return shift


# -- validation -------------------------------------------------------------------------------------


class RougeValidator:
    """Generates a summary per validation example and returns mean ROUGE F1 x 100 (`REPORTED`)."""

    def __init__(self, examples: Sequence[Example], settings: GenerationSettings, progress: bool = False) -> None:
        self.examples, self.settings, self.progress = list(examples), settings, progress
        self.pairs = document_pairs(self.examples)

    def __call__(self, model: Any, tokenizer: PreTrainedTokenizerBase, inputs: InputBuilder) -> dict[str, float]:
        was_training = model.training
        model.eval()
        try:
            texts = generate_texts(model, tokenizer, inputs, self.pairs, self.settings, self.progress)
        finally:
            model.train(was_training)
        scores = mean_scores(rouge(t, e.references) for t, e in zip(texts, self.examples))
        scores[PRIMARY_METRIC] = (scores["rouge1"] + scores["rouge2"] + scores["rougeLsum"]) / 3
        return scores


class _ValidatingTrainer(Trainer):
    """The Trainer, with `evaluate` replaced by generation and ROUGE (see `RougeValidator`)."""

    def __init__(self, *args: Any, validator: RougeValidator, loaded: Seq2SeqModel, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.validator, self.loaded = validator, loaded

    def evaluate(self, eval_dataset: Any = None, ignore_keys: Any = None, metric_key_prefix: str = "eval") -> dict[str, float]:
        scores = self.validator(self.model, self.loaded.tokenizer, self.loaded.inputs)
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in scores.items()}
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


# -- training ----------------------------------------------------------------------------------------


def _arguments(config: Seq2SeqTrainingConfig, out: Path, validate: bool) -> TrainingArguments:
    precision = resolve_dtype(config.dtype) if default_device() == "cuda" else torch.float32  # CPU: fp32
    return TrainingArguments(
        **trainer_arguments(config, out, validate, precision),
        gradient_accumulation_steps=config.grad_accum,
        activation_checkpointing=config.grad_checkpointing,
        weight_decay=config.weight_decay,
        label_smoothing_factor=config.label_smoothing,
        remove_unused_columns=False,  # the collator builds the model's inputs
    )


def _validation(config: Seq2SeqTrainingConfig, progress: bool) -> RougeValidator | None:
    if not config.val_split:
        return None
    examples = read_examples(config.val_data or config.data, config.val_split)
    examples = sample_examples([e for e in examples if e.references], config.val_limit, config.seed)
    if not examples:
        raise QfsumError("no validation examples with a reference summary")
    return RougeValidator(examples, GenerationSettings(config.num_beams, config.max_new_tokens), progress)


def train_seq2seq(
    config: Seq2SeqTrainingConfig, model: Seq2SeqModel | None = None, progress: bool = True,
    command: str | None = None, callbacks: Sequence[TrainerCallback] = (),
) -> dict[str, Any]:
    """Train (or resume, or just report) the run `config` describes; return its run record.

    A finished run in `config.out` is reported, not retrained; an unfinished one resumes from its
    last checkpoint; a folder that holds another run is refused. `model` replaces the loader of
    `config.arch`; `command` is shown in the model card; `callbacks` are extra `TrainerCallback`s.
    """
    out = Path(config.out)
    previous = previous_run(out, config.identity())
    if previous is not None and previous.get("status") == "done":
        return {**previous, "reported": True}
    if model is None:
        resolve(config.init or config.base)  # fail now, not after encoding, on a model that cannot be found
    validator = _validation(config, progress)
    examples = [e for e in read_examples(config.data, config.split) if e.references]
    if not examples:
        raise QfsumError("no training examples with a reference summary")
    transformers.set_seed(config.seed)
    loaded = model or load_model(config)
    features = encode_examples(examples, loaded.inputs, loaded.tokenizer, config.max_target, progress)
    run = new_session(out, previous, config.identity(), command)
    run["writer"] = loaded.writer
    run["data"] = {
        "examples": len(examples),
        "documents": len({id(e.document) for e in examples}),
        "validation_examples": len(validator.examples) if validator else 0,
    }
    run["machine"] = machine()
    write_run(out, run)

    started = time.perf_counter()

    def seconds() -> float:  # training time of every session of this run
        return run["seconds_before"] + time.perf_counter() - started

    def save(model: Any, folder: Path) -> None:  # a Hugging Face folder, with its tokenizer
        model.save_pretrained(folder)
        loaded.tokenizer.save_pretrained(folder)

    bookkeeping = RunBookkeeping(run, out / BEST, save, REPORTED, PRIMARY_METRIC, lambda: write_run(out, run), seconds)
    trainer = drop_default_progress(_ValidatingTrainer(
        model=loaded.model,
        args=_arguments(config, out, validator is not None),
        train_dataset=features,
        eval_dataset=validator.examples if validator else None,
        data_collator=Seq2SeqCollator(loaded.inputs, shift_right(loaded.model)),
        callbacks=[bookkeeping, *([LossProgress(REPORTED)] if progress else []), *callbacks],
        validator=validator,
        loaded=loaded,
    ))
    checkpoint = last_checkpoint(out / CHECKPOINTS)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    if validator is not None and not any(h["step"] == trainer.state.global_step for h in run["history"]):
        trainer.evaluate()  # the end of training is always validated (and may be the best)
    return _finish(out, run, trainer, lambda: save(trainer.model, out), seconds())


def _finish(out: Path, run: dict[str, Any], trainer: Trainer, save_last: Callable[[], None],
            seconds: float) -> dict[str, Any]:
    """Put the best (or, without validation, the last) model at the top of `out`; write the
    pipeline, the run record and the model card."""
    keep_best(out, save_last)
    pipeline = {
        "name": out.name,
        "description": f"{run['writer']} writer trained by qfsum train seq2seq (reads the whole document)",
        "segmenter": {"kind": "turn"},
        "scorer": {"kind": "lead"},
        "writer": {"kind": run["writer"], "model": ".", "num_beams": run["config"]["num_beams"],
                   "max_new_tokens": run["config"]["max_new_tokens"]},
    }
    (out / "pipeline.json").write_text(json.dumps(pipeline, indent=2) + "\n")
    run["status"] = "done"
    run["step"] = trainer.state.global_step
    run["seconds"] = seconds
    run["train_loss"] = [{"step": h["step"], "loss": h["loss"]} for h in trainer.state.log_history if "loss" in h]
    write_run(out, run)
    write_model_card(out, run, "seq2seq")
    return run
