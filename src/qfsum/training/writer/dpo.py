"""Direct preference optimisation of the real-time writer (Rafailov et al., 2023).

For each training prompt the starting model samples `k` answers; a reward ranks them (ROUGE
against the reference by default; `faithful`: ROUGE plus the faithfulness metrics, never preferring
the less faithful answer; or any `(answer, example) -> float`); the best and the worst make a
(chosen, rejected) pair. The policy is then trained with the DPO loss against the frozen
starting model, whose log-probabilities are computed once, with the pairs, and cached in
`pairs.jsonl` (a resumed run neither resamples nor needs a second model in memory).

The loss is ours (a dozen lines, tested on hand-made log-probabilities) rather than TRL's
`DPOTrainer`, so it runs in the loop SFT and distillation share.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TYPE_CHECKING

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ...errors import QfsumError
from ...evaluation.rouge import rouge
from ...io import atomic_write_lines
from ...writers.prompt import fitted_prompt_ids
from .sft import (
    Job,
    TrainConfig,
    load_trainable,
    resume_point,
    run_training,
    task_splits,
)
from .taskdata import IGNORE, TaskExample

if TYPE_CHECKING:  # annotations only: transformers loads when a model does
    from transformers import PreTrainedTokenizerBase

PAIRS_FILE = "pairs.jsonl"
Reward = Callable[[str, TaskExample], float]


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, reference_chosen: torch.Tensor,
             reference_rejected: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """-log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))), averaged over pairs.

    Inputs are summed log-probabilities of whole answers, shape (B,).
    """
    margin = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)
    return -F.logsigmoid(beta * margin).mean()


def answer_logprobs(model: Any, prompts: Sequence[list[int]], answers: Sequence[list[int]], pad: int) -> torch.Tensor:
    """Summed log-probability of each answer after its prompt, shape (B,)."""
    rows = [p + a for p, a in zip(prompts, answers, strict=True)]
    width = max(map(len, rows))
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=model.device)  # (B, T)
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=model.device)
    labels = torch.tensor([[IGNORE] * len(p) + a + [IGNORE] * (width - len(p) - len(a))
                           for p, a in zip(prompts, answers)], device=model.device)
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()  # (B, T-1, V) predicts tokens 1..T-1
    targets = labels[:, 1:]
    taken = targets.clamp(min=0).unsqueeze(-1)
    token_logprobs = torch.log_softmax(logits, -1).gather(-1, taken).squeeze(-1)  # (B, T-1)
    return (token_logprobs * (targets != IGNORE)).sum(-1)


# -- rewards ------------------------------------------------------------------------------------------


def rouge_reward(answer: str, example: TaskExample) -> float:
    """Mean of ROUGE-1, -2 and -L F1 against the reference answer."""
    scores = rouge(answer, [example.target], ("rouge1", "rouge2", "rougeL"))
    return sum(scores.values()) / 3


def passage_reward(answer: str, example: TaskExample) -> float:
    """Faithfulness proxy: ROUGE-2 precision of the answer against the passage (its bigrams found there)."""
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge2"], use_stemmer=True).score(example.passage, answer)["rouge2"].precision * 100


FAITHFUL_WEIGHT = 20.0  # reward points per unit of faithfulness: 0.5 -> 1.0 outweighs a typical ROUGE spread


def answer_faithfulness(answer: str, example: TaskExample) -> float:
    """The mean of the answer's supported-sentence share and its number and name precision (where
    defined) against the passage's segments (one a line), as `qfsum evaluate` measures them; 0 for an
    answer with no sentence."""
    from ...evaluation.faithfulness import faithfulness

    segments = [line for line in example.passage.split("\n") if line.strip()]
    scores = faithfulness(answer, segments, example.passage)
    defined = [scores[k] for k in ("supported_sentences", "number_precision", "name_precision") if scores[k] is not None]
    return sum(defined) / len(defined) if scores["supported_sentences"] is not None else 0.0


def faithful_reward(answer: str, example: TaskExample) -> float:
    """ROUGE against the reference (`rouge_reward`) plus `FAITHFUL_WEIGHT` x `answer_faithfulness`.
    Pairs built with it never prefer the less faithful answer (`build_pairs` reads `guard`)."""
    return rouge_reward(answer, example) + FAITHFUL_WEIGHT * answer_faithfulness(answer, example)


faithful_reward.guard = answer_faithfulness  # type: ignore[attr-defined]  # the chosen must not score lower on it

REWARDS: dict[str, Reward] = {"rouge": rouge_reward, "passage": passage_reward, "faithful": faithful_reward}


def load_reward(name: str) -> Reward:
    """A reward by name (rouge, passage) or as `module:function`."""
    if name in REWARDS:
        return REWARDS[name]
    module, _, function = name.partition(":")
    try:
        return getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError, ValueError):
        raise QfsumError(f"unknown reward '{name}' (choose from {', '.join(REWARDS)}, or give module:function)") from None


# -- pairs --------------------------------------------------------------------------------------------


@dataclass
class DPOOptions:
    """DPO's own knobs (the rest is `TrainConfig`)."""

    beta: float = 0.1
    samples: int = 4  # candidates sampled per prompt
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 120
    reward: str = "rouge"


def sample_candidates(model: Any, tokenizer: PreTrainedTokenizerBase, prompt: list[int], options: DPOOptions) -> list[list[int]]:
    """`options.samples` sampled answers (token ids, ending with EOS when the model stopped)."""
    ids = torch.tensor([prompt], device=model.device)
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True,
                             temperature=options.temperature, top_p=options.top_p, max_new_tokens=options.max_new_tokens,
                             num_return_sequences=options.samples, pad_token_id=tokenizer.pad_token_id)
    answers = []
    for row in out[:, len(prompt):].tolist():
        if tokenizer.eos_token_id in row:
            row = row[: row.index(tokenizer.eos_token_id) + 1]
        answers.append(row)
    return answers


def build_pairs(model: Any, tokenizer: PreTrainedTokenizerBase, examples: Sequence[TaskExample], options: DPOOptions, max_prompt: int,
                reward: Reward, progress: bool = True) -> list[dict[str, Any]]:
    """Chosen/rejected pairs with the frozen model's log-probabilities (prompts whose candidates all tie are skipped)."""
    pairs = []
    model.eval()
    for example in tqdm(examples, desc="sample pairs", unit="prompt", disable=not progress):
        prompt = fitted_prompt_ids(tokenizer, example.query, example.passage, max_prompt)
        candidates = sample_candidates(model, tokenizer, prompt, options)
        picked = pick_pair([tokenizer.decode(c, skip_special_tokens=True) for c in candidates], example, reward)
        if picked is None:
            continue
        (high, chosen), (low, rejected) = ((score, candidates[i]) for score, i in picked)
        with torch.inference_mode():
            reference = answer_logprobs(model, [prompt, prompt], [chosen, rejected], tokenizer.pad_token_id).tolist()
        pairs.append({"id": example.id, "prompt": prompt, "chosen": chosen, "rejected": rejected,
                      "reward_chosen": high, "reward_rejected": low, "reference": reference})
    model.train()
    return pairs


def pick_pair(answers: Sequence[str], example: TaskExample, reward: Reward) -> tuple[tuple[float, int], tuple[float, int]] | None:
    """((reward, index) of the chosen answer, (reward, index) of the rejected one), or None when all tie.

    The chosen has the highest reward, the rejected the lowest. A reward with a `guard` (such as
    `faithful_reward`) also requires the rejected not to score higher than the chosen on the guard: a
    preference must never teach the writer to be less faithful.
    """
    rewards = [reward(answer, example) for answer in answers]
    best = max(range(len(answers)), key=lambda i: rewards[i])
    guard = getattr(reward, "guard", None)
    floor = guard(answers[best], example) if guard else None
    rejectable = [i for i in range(len(answers)) if rewards[i] < rewards[best]
                  and (floor is None or guard(answers[i], example) <= floor)]
    if not rejectable:
        return None
    worst = min(rejectable, key=lambda i: rewards[i])
    return (rewards[best], best), (rewards[worst], worst)


def _load_or_build_pairs(out: Path, build: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    path = out / PAIRS_FILE
    if path.exists():
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    pairs = build()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_lines(path, (json.dumps(p) for p in pairs))
    return pairs


def pair_loss(model: Any, batch: list[dict[str, Any]], pad: int, beta: float) -> torch.Tensor:
    """The DPO loss of a batch of cached pairs."""
    prompts = [p["prompt"] for p in batch]
    chosen = answer_logprobs(model, prompts, [p["chosen"] for p in batch], pad)
    rejected = answer_logprobs(model, prompts, [p["rejected"] for p in batch], pad)
    reference = torch.tensor([p["reference"] for p in batch], device=chosen.device)  # (B, 2)
    return dpo_loss(chosen, rejected, reference[:, 0], reference[:, 1], beta)


def train_dpo(config: TrainConfig, options: DPOOptions, progress: bool = True, command: str | None = None) -> dict[str, Any]:
    """DPO from `config.base` (typically an SFT adapter directory); resumable like SFT."""
    if options.samples < 2 or options.beta <= 0:
        raise QfsumError("DPO needs at least 2 samples per prompt and beta > 0")
    reward = load_reward(options.reward)
    previous, checkpoint = resume_point(config)
    if previous is not None and previous.get("status") == "done":
        return {**previous, "reported": True}
    model, tokenizer = load_trainable(config, checkpoint)
    train, val = task_splits(config, tokenizer, progress)
    train = [e for e in train if e.target] if options.reward in ("rouge", "faithful") else train

    def build() -> list[dict[str, Any]]:
        torch.manual_seed(config.seed)
        # The adapters are fresh (zero) here, so the policy is still the frozen starting model.
        return build_pairs(model, tokenizer, train, options, config.max_prompt, reward, progress)

    pairs = _load_or_build_pairs(Path(config.out), build)
    if not pairs:
        raise QfsumError("no preference pairs: every prompt's candidates got the same reward")
    notes = {"pairs": len(pairs), "beta": options.beta, "samples per prompt": options.samples,
             "reward": options.reward, "sampling": f"temperature {options.temperature}, top-p {options.top_p}"}
    pad = tokenizer.pad_token_id
    job = Job("dpo", pairs, lambda m, b: pair_loss(m, b, pad, options.beta), val, notes)
    return run_training(config, job, model, tokenizer, progress, command)

