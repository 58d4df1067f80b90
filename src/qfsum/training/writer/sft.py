"""Supervised fine-tuning of the real-time writer, and the training loop distillation and DPO share.

`qfsum train sft` teaches a causal LM (the packaged SmolLM2-135M-Instruct by default) to answer a
query from a passage (`taskdata`): the loss is on the answer tokens only, the weights are either
all trained or, with LoRA (peft), frozen under small low-rank adapters. Every `eval_steps` the
model answers validation prompts greedily (lookahead decoding) and its ROUGE is recorded; the best
model is kept. `checkpoint/` holds the newest state (weights, optimizer, schedule, step): rerunning
the same command resumes there. The finished folder holds the best model (a LoRA adapter of a few
MB, which `qfsum.assets.load_generator` loads on top of its base), `README.md` (the model card)
and `qfsum_training.json`.

The loop is written by hand (not `transformers.Trainer`) because DPO needs two models and pairs of
sequences per example, and distillation a teacher's logits; the three share this one loop.
"""

from __future__ import annotations

import inspect
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from ...errors import QfsumError
from ...evaluation.rouge import ROUGE_KEYS, mean_scores, rouge
from ...io import staged_folder
from ...writers.prompt import fitted_prompt_ids
from ..common.card import write_model_card
from ..common.config import RunConfig
from ..common.runs import machine, previous_run, read_run, write_run
from .taskdata import IGNORE, TaskExample, cached_task_examples, collate, encode

if TYPE_CHECKING:  # annotations only: transformers loads when a model does
    from transformers import PreTrainedTokenizerBase

CHECKPOINT, BEST, MODEL, STATE = "checkpoint", "best", "model", "state.pt"
PRIMARY_METRIC = "rougeLsum"  # picks the best checkpoint (QMSum's "R-L")
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class TrainConfig(RunConfig):
    """One training run of the real-time writer; every field but `out` and `gradient_checkpointing`
    identifies the run (checkpointing changes memory and time, not the arithmetic)."""

    NOT_IDENTITY = ("out", "gradient_checkpointing")

    base: str  # packaged name, directory or hub id of the starting model (or a LoRA adapter directory)
    data: str  # QMSum folder, JSONL data set or task file
    out: str
    split: str | None = "train"
    val_data: str | None = None  # None: the same as `data`
    val_split: str | None = "val"  # None: no validation (the last model is kept)
    source: str = "spans"  # passages: spans | document | pipeline:NAME (see taskdata)
    passage_tokens: int = 768  # budget of `document` and `pipeline:` passages
    max_prompt: int = 1024  # prompt tokens (the writer's input budget)
    max_target: int = 256  # answer tokens learned at most
    limit: int | None = None  # training examples at most (first N)
    lora: bool = True  # False: fine-tune every weight
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    epochs: float = 1.0
    max_steps: int | None = None  # overrides epochs
    batch_size: int = 4
    lr: float = 2e-4  # LoRA; full fine-tuning wants ~2e-5
    warmup: float = 0.05  # fraction of steps with a rising learning rate
    log_steps: int = 10
    eval_steps: int = 100  # validate every N steps, and at the end
    save_steps: int = 50  # checkpoint every N steps
    val_limit: int | None = 30  # validation examples (first N); None = all
    val_max_new_tokens: int = 120
    val_batch_size: int = 8
    dtype: str = "float32"  # float32, or auto: bf16 autocast where the hardware has it
    seed: int = 0
    gradient_checkpointing: bool = False  # recompute each layer's activations in the backward pass: less memory, more time

    def __post_init__(self) -> None:
        self.require_counts("batch_size", "log_steps", "eval_steps", "save_steps", "max_prompt", "max_target", "lora_r",
                            "lora_alpha", "passage_tokens", "val_max_new_tokens", "val_batch_size")
        if self.val_limit is not None and self.val_limit < 1:
            raise QfsumError(f"val limit must be >= 1 (or None for all), got {self.val_limit}")
        if not (self.epochs > 0 and self.lr > 0) or (self.max_steps is not None and self.max_steps < 1):
            raise QfsumError("epochs and the learning rate must be > 0, max steps >= 1")
        if not 0 <= self.warmup < 1:  # a fraction of the steps; `not` also refuses nan
            raise QfsumError(f"warmup must be in [0, 1), got {self.warmup}")
        self.require_dtype()


# -- models -------------------------------------------------------------------------------------------


def load_trainable(config: TrainConfig, resume_from: Path | None = None) -> tuple[Any, Any]:
    """(model in train mode, tokenizer): the base with fresh LoRA adapters, or every weight trainable;
    from `resume_from` (a checkpoint's model folder) when given."""
    from peft import LoraConfig, PeftModel, get_peft_model

    from ...assets import load_generator_uncached, require_safetensors

    model, tokenizer = load_generator_uncached(config.base, "float32")
    if config.gradient_checkpointing:  # non-reentrant: LoRA needs no gradient on the frozen inputs
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if resume_from is not None:
        require_safetensors(str(resume_from))  # peft would fall back to a pickled adapter_model.bin
        if config.lora:
            model = PeftModel.from_pretrained(model, str(resume_from), is_trainable=True)
        else:
            model = type(model).from_pretrained(str(resume_from), dtype=torch.float32,
                                                use_safetensors=True).to(model.device)
    elif config.lora:
        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=[m for m in LORA_TARGETS if _has_module(model, m)], task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)
    model.train()
    return model, tokenizer


def _has_module(model: Any, suffix: str) -> bool:
    return any(name.endswith(suffix) for name, _ in model.named_modules())


def save_model(model: Any, tokenizer: PreTrainedTokenizerBase, directory: Path, base: str) -> None:
    """Save the weights (the adapter alone for LoRA) and the tokenizer; an adapter names `base` as
    its base model, so it loads wherever that name resolves (a packaged name is portable)."""
    with staged_folder(directory) as staging:
        model.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        adapter_config = staging / "adapter_config.json"
        if adapter_config.exists():
            data = json.loads(adapter_config.read_text())
            data["base_model_name_or_path"] = base
            adapter_config.write_text(json.dumps(data, indent=2) + "\n")


# -- validation ---------------------------------------------------------------------------------------


def generate_answers(model: Any, tokenizer: PreTrainedTokenizerBase, examples: Sequence[TaskExample], max_prompt: int,
                     max_new_tokens: int, batch_size: int = 8, progress: bool = False,
                     no_repeat_ngram_size: int = 3) -> list[str]:
    """Greedy answers (lookahead decoding, several prompts at a time), with the writer's n-gram ban within the answer."""
    from ...writers.lookahead import lookahead_generate, writer_processors

    def processors(prompt_length: int) -> list:
        return writer_processors(no_repeat_ngram_size, prompt_length=prompt_length)

    was_training = model.training
    model.eval()
    answers = []
    for i in tqdm(range(0, len(examples), batch_size), desc="validate", unit="batch", disable=not progress, leave=False):
        chunk = examples[i : i + batch_size]
        prompts = [fitted_prompt_ids(tokenizer, e.query, e.passage, max_prompt) for e in chunk]
        outputs = lookahead_generate(model, prompts, max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                     eos_token_id=tokenizer.eos_token_id, processors=processors)
        answers.extend(tokenizer.decode(o, skip_special_tokens=True).strip() for o in outputs)
    model.train(was_training)
    return answers


def rouge_of(answers: Sequence[str], examples: Sequence[TaskExample]) -> dict[str, float]:
    """Mean ROUGE F1 x 100 of answers against the examples' targets."""
    return mean_scores(rouge(a, [e.target]) for a, e in zip(answers, examples, strict=True))


# -- the loop -----------------------------------------------------------------------------------------

LossFn = Callable[[Any, list[Any]], torch.Tensor]  # (model, batch of rows) -> scalar loss


@dataclass
class Job:
    """What one run trains: its rows, how a batch becomes a loss, and what the card says."""

    kind: str  # sft | distill | dpo
    rows: list[Any]
    loss: LossFn
    val_examples: list[TaskExample] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)  # extra facts for the run record and the card


def _schedule(optimizer: Any, warmup: int, total: int) -> Any:
    from transformers import get_linear_schedule_with_warmup

    return get_linear_schedule_with_warmup(optimizer, warmup, total)


def _batch_at(rows: Sequence[Any], step: int, batch_size: int, seed: int) -> list[Any]:
    """The rows of optimizer step `step`: a fresh permutation each epoch, so a resumed run sees the same batches."""
    per_epoch = max(len(rows) // batch_size, 1)
    epoch, position = divmod(step, per_epoch)
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    return [rows[i] for i in order[position * batch_size : (position + 1) * batch_size]]


def run_training(config: TrainConfig, job: Job, model: Any, tokenizer: PreTrainedTokenizerBase, progress: bool = True,
                 command: str | None = None) -> dict[str, Any]:
    """Train `model` on `job` under `config`: checkpoints, validation, best model, model card."""
    from ...assets import autocast, resolve_dtype

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    run = read_run(out) or {"config": config.identity(), "kind": job.kind, "command": command, "status": "training",
                            "history": [], "best": None, "step": 0, "seconds": 0.0, "train_loss": []}
    run["machine"] = machine()
    run["data"] = {"rows": len(job.rows), "validation_examples": len(job.val_examples), **job.notes}
    per_epoch = max(len(job.rows) // config.batch_size, 1)
    total = config.max_steps or max(int(per_epoch * config.epochs), 1)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=0.0)
    scheduler = _schedule(optimizer, int(config.warmup * total), total)
    step = 0
    state_file = out / CHECKPOINT / STATE
    if state_file.exists():  # resume: the model was loaded from the checkpoint; restore the rest
        state = load_state(state_file)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step = state["step"]
    write_run(out, run)
    precision = resolve_dtype("auto") if config.dtype == "auto" else torch.float32
    device_type = "cuda" if str(model.device).startswith("cuda") else "cpu"
    started, seconds_before = time.perf_counter(), run["seconds"]
    bar = tqdm(total=total, initial=step, desc=job.kind, unit="step", disable=not progress)
    losses: list[float] = []
    while step < total:
        batch = _batch_at(job.rows, step, config.batch_size, config.seed)
        with autocast(device_type, precision):
            loss = job.loss(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        losses.append(loss.item())
        bar.update(1)
        if step % config.log_steps == 0 or step == total:
            mean = sum(losses) / len(losses)
            run["train_loss"].append({"step": step, "loss": round(mean, 5)})
            bar.set_postfix(loss=f"{mean:.4f}")
            losses = []
        if job.val_examples and (step % config.eval_steps == 0 or step == total):
            _validate(config, job, model, tokenizer, out, run, step, bar, progress)
        if step % config.save_steps == 0 or step == total:
            run["step"], run["seconds"] = step, seconds_before + time.perf_counter() - started
            _checkpoint(model, tokenizer, optimizer, scheduler, step, out, config.base)
            write_run(out, run)
    bar.close()
    return _finish(config, job, model, tokenizer, out, run)


def _validate(config: TrainConfig, job: Job, model: Any, tokenizer: PreTrainedTokenizerBase, out: Path, run: dict[str, Any], step: int,
              bar: Any, progress: bool) -> None:
    answers = generate_answers(model, tokenizer, job.val_examples, config.max_prompt, config.val_max_new_tokens,
                               config.val_batch_size, progress)
    scores = {k: round(v, 3) for k, v in rouge_of(answers, job.val_examples).items()}
    run["history"] = [h for h in run["history"] if h["step"] != step] + [{"step": step, **scores}]
    bar.write(f"step {step}: " + "  ".join(f"{k} {scores[k]:.2f}" for k in ROUGE_KEYS))
    if run["best"] is None or scores[PRIMARY_METRIC] > run["best"][PRIMARY_METRIC]:
        save_model(model, tokenizer, out / BEST, config.base)
        run["best"] = {"step": step, **scores}
        (out / BEST / "validation_predictions.json").write_text(json.dumps(answers[:10], indent=1) + "\n")
    write_run(out, run)


def load_state(path: Path) -> dict[str, Any]:
    """A checkpoint's optimizer and schedule state. `weights_only=True`: tensors and plain Python
    values only, so a crafted `state.pt` cannot run code; anything else is a one-line error."""
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise QfsumError(f"{path}: not a qfsum training state ({type(err).__name__}); "
                         "remove the checkpoint folder to start over") from None
    if not isinstance(state, dict) or not {"optimizer", "scheduler", "step"} <= state.keys():
        raise QfsumError(f"{path}: not a qfsum training state; remove the checkpoint folder to start over")
    return state


def _checkpoint(model: Any, tokenizer: PreTrainedTokenizerBase, optimizer: Any, scheduler: Any, step: int, out: Path, base: str) -> None:
    with staged_folder(out / CHECKPOINT) as staging:  # never half a checkpoint
        save_model(model, tokenizer, staging / MODEL, base)
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step},
                   staging / STATE)


def _finish(config: TrainConfig, job: Job, model: Any, tokenizer: PreTrainedTokenizerBase, out: Path, run: dict[str, Any]) -> dict[str, Any]:
    """The best (or, without validation, the last) model at the top of `out`, the card, the record."""
    source = out / BEST if (out / BEST).is_dir() else out / CHECKPOINT / MODEL
    for path in source.iterdir():
        target = out / path.name
        if target.is_dir():
            shutil.rmtree(target)
        shutil.copy2(path, target) if path.is_file() else shutil.copytree(path, target)
    shutil.rmtree(out / BEST, ignore_errors=True)
    shutil.rmtree(out / CHECKPOINT, ignore_errors=True)
    run["status"] = "done"
    run["size_mb"] = round(sum(p.stat().st_size for p in out.glob("*.safetensors")) / 2**20, 1)
    write_run(out, run)
    write_model_card(out, run, "writer")
    return run


def resume_point(config: TrainConfig) -> tuple[dict[str, Any] | None, Path | None]:
    """(the previous record of this run, the model folder of its checkpoint); a finished run has no checkpoint."""
    out = Path(config.out)
    previous = previous_run(out, config.identity())
    checkpoint = out / CHECKPOINT / MODEL
    return previous, checkpoint if checkpoint.is_dir() and (out / CHECKPOINT / STATE).exists() else None


# -- SFT ----------------------------------------------------------------------------------------------


def sft_loss(model: Any, batch: list[dict[str, list[int]]], pad_token_id: int) -> torch.Tensor:
    """Mean cross-entropy of the answer tokens (labels of prompt and padding are IGNORE).

    Only the positions from the batch's first answer token on get logits (`logits_to_keep`): the prompt
    is most of a row, and its (rows x tokens x vocabulary) logits were most of a step's memory."""
    tensors = {k: v.to(model.device) for k, v in collate(batch, pad_token_id).items()}
    labels = tensors.pop("labels")
    answered = (labels != IGNORE).any(0).nonzero()
    first = max(1, int(answered[0]) if len(answered) else labels.shape[1] - 1)  # first column holding an answer token
    if _takes_logits_to_keep(model):
        logits = model(**tensors, logits_to_keep=labels.shape[1] - first + 1).logits
    else:  # every position's logits
        logits = model(**tensors).logits[:, first - 1:]
    # the logits at position p predict token p + 1: positions first-1 .. T-2 predict the labels first .. T-1
    return torch.nn.functional.cross_entropy(logits[:, :-1].float().flatten(0, 1), labels[:, first:].flatten(),
                                             ignore_index=IGNORE)


def _takes_logits_to_keep(model: Any) -> bool:
    """Whether the (LoRA-wrapped or bare) model's forward names a `logits_to_keep` parameter."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def task_splits(config: TrainConfig, tokenizer: PreTrainedTokenizerBase, progress: bool) -> tuple[list[TaskExample], list[TaskExample]]:
    """Training and validation task examples (validation: only those with a reference)."""
    train = cached_task_examples(config.out, config.data, config.split, config.source, tokenizer,
                                 config.passage_tokens, config.limit, progress)
    val: list[TaskExample] = []
    if config.val_split:
        val = cached_task_examples(config.out, config.val_data or config.data, config.val_split, config.source,
                                   tokenizer, config.passage_tokens, None, progress)
        val = [e for e in val if e.target][: config.val_limit or None]
        if not val:
            raise QfsumError("no validation examples with a reference answer")
    return train, val


def train_sft(config: TrainConfig, progress: bool = True, command: str | None = None) -> dict[str, Any]:
    """Fine-tune (or resume, or report) the run `config` describes; returns its run record."""
    previous, checkpoint = resume_point(config)
    if previous is not None and previous.get("status") == "done":
        return {**previous, "reported": True}
    model, tokenizer = load_trainable(config, checkpoint)
    train, val = task_splits(config, tokenizer, progress)
    rows = [encode(tokenizer, e, config.max_prompt, config.max_target) for e in train if e.target]
    if not rows:
        raise QfsumError("no training examples with a reference answer")
    pad = tokenizer.pad_token_id
    job = Job("sft", rows, lambda m, b: sft_loss(m, b, pad), val, {"examples": len(train)})
    return run_training(config, job, model, tokenizer, progress, command)

