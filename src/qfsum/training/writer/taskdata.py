"""Task data of the real-time writer: (query, passage, target) examples and their token encoding.

Three ways to get a passage for an example of any data set `read_examples` reads (QMSum, JSONL):

- `spans`: the gold evidence spans (QMSum's specific queries): a short, query-driven passage,
  like a search snippet. Examples without spans are skipped.
- `pipeline:NAME`: the evidence a pipeline's segmenter and scorer pick under a token budget, in
  document order: the long-document task the `default` pipeline solves (every query).
- `document`: the whole document, cut to the budget.

Splits are the source's: `--split train` of a QMSum folder gives training examples, `val` the
validation ones; a JSONL file is one split. Built examples can be saved as a JSONL task file
(`id`, `query`, `passage`, `target`) and read back instead of a data set.

The model sees exactly the prompt the generative writer builds (`writers.prompt` builds both), so
a model trained here writes well inside a pipeline.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TYPE_CHECKING

from ...errors import QfsumError
from ...io import atomic_write_lines
from ...writers.prompt import fitted_prompt_ids

if TYPE_CHECKING:  # annotations only: transformers loads when a model does
    from transformers import PreTrainedTokenizerBase

IGNORE = -100  # label of a token the loss skips (prompt and padding)
SOURCES = ("spans", "document", "pipeline:NAME")


@dataclass(frozen=True)
class TaskExample:
    """One training or validation item."""

    id: str
    query: str
    passage: str
    target: str  # the reference answer ("" for unlabelled prompts)


# -- building -------------------------------------------------------------------------------------


def span_passage(example: Any) -> str:
    """The text of the units an example's gold spans cover, in document order ("" without spans)."""
    units = example.document.units
    covered = sorted(i for i in example.gold_units() if 0 <= i < len(units))
    return "\n".join(units[i].text for i in covered if units[i].text.strip())


def _ranking_config(name: str) -> Any:
    """The pipeline `name` as far as its evidence goes: its writer replaced by the extractive one, as only
    its ranking is used (no generator to load, and a change of writer keeps the same task file)."""
    from ...pipeline import load_config
    from ...writers import WriterConfig

    config = load_config(name)
    config.writer = WriterConfig(kind="extractive")
    return config


def _pipeline_passages(examples: Sequence[Any], name: str, budget: int, tokenizer: PreTrainedTokenizerBase, progress: bool) -> list[str]:
    """The evidence a pipeline's scorer picks under `budget` tokens, joined in document order."""
    from tqdm.auto import tqdm

    from ...budget import TokenizerCounter, select_under_budget
    from ...pipeline import Pipeline

    pipeline = Pipeline(_ranking_config(name))
    counter = TokenizerCounter(tokenizer)
    passages = []
    for example in tqdm(examples, desc=f"evidence ({name})", unit="ex", disable=not progress):
        chosen = select_under_budget(pipeline.rank(example.document, example.query), budget, counter, cut_last=True)
        passages.append("\n".join(e.segment.text for e in chosen))
    return passages


def build_task_examples(
    data: str | Path,
    split: str | None,
    source: str = "spans",
    tokenizer: PreTrainedTokenizerBase = None,
    budget: int = 768,
    limit: int | None = None,
    progress: bool = False,
) -> list[TaskExample]:
    """Task examples of a data set (see the module docstring), or of a saved task file.

    `budget` bounds the passage in tokens of `tokenizer` for `pipeline:` and `document`;
    `limit` keeps the first N examples (fixed order).
    """
    if is_task_file(data):
        return read_task_file(data)[:limit] if limit else read_task_file(data)
    from ...readers import read_examples

    examples = read_examples(data, split)
    if source == "spans":
        items = [(e, span_passage(e)) for e in examples]
        items = [(e, p) for e, p in items if p]
        if not items:
            raise QfsumError(f"{data}: no example has gold evidence spans (try --source pipeline:default)")
        items = items[:limit] if limit else items
        return [TaskExample(e.id, e.query, p, e.references[0] if e.references else "") for e, p in items]
    examples = examples[:limit] if limit else examples
    if tokenizer is None:
        raise QfsumError(f"source '{source}' needs a tokenizer to apply its budget")
    if source == "document":
        from ...budget import TokenizerCounter

        counter = TokenizerCounter(tokenizer)
        passages = [counter.truncate(e.document.text, budget) for e in examples]
    elif source.startswith("pipeline:") and source[len("pipeline:"):]:
        passages = _pipeline_passages(examples, source[len("pipeline:"):], budget, tokenizer, progress)
    else:
        raise QfsumError(f"unknown task source '{source}' (choose from {', '.join(SOURCES)})")
    return [TaskExample(e.id, e.query, p, e.references[0] if e.references else "") for e, p in zip(examples, passages)]


def cached_task_examples(
    cache_dir: str | Path,
    data: str | Path,
    split: str | None,
    source: str = "spans",
    tokenizer: PreTrainedTokenizerBase = None,
    budget: int = 768,
    limit: int | None = None,
    progress: bool = False,
) -> list[TaskExample]:
    """`build_task_examples`, kept in `cache_dir` as a task file when the source is `pipeline:`: ranking
    every document of a train split takes minutes, and a run resumed (or the teacher's answers written
    over several sessions) should not pay it again. The file is named by a hash of what the examples
    depend on (the data files' contents, split, the pipeline's ranking config, the tokenizer, budget and
    limit);
    a limited run reads the first `limit` examples of the whole split's file when there is one."""
    if not source.startswith("pipeline:") or is_task_file(data):
        return build_task_examples(data, split, source, tokenizer, budget, limit, progress)
    config = _ranking_config(source[len("pipeline:"):]).to_dict()
    ranking = {k: config[k] for k in ("segmenter", "scorer")}  # what ranks, not what it is called or writes
    stamp = [_data_stamp(data, split), split, ranking, _tokenizer_stamp(tokenizer), budget]

    def task_path(limit: int | None) -> Path:
        key = hashlib.sha256(json.dumps([*stamp, limit], sort_keys=True, default=str).encode()).hexdigest()[:16]
        return Path(cache_dir) / f"tasks-{split or 'all'}-{key}.jsonl"

    whole, path = task_path(None), task_path(limit or None)
    if whole.is_file():  # examples are ranked one by one, so the first N of the whole split are the same
        return read_task_file(whole)[:limit] if limit else read_task_file(whole)
    if path.is_file():
        return read_task_file(path)
    examples = build_task_examples(data, split, source, tokenizer, budget, limit, progress)
    if examples:
        write_task_file(path, examples)
    return examples


def _data_stamp(data: str | Path, split: str | None) -> list[tuple[str, str]]:
    """(name, sha256) of the data's files, a QMSum split folder's or the one file: contents, not times,
    since a copy of the same data (a fresh checkout, a re-mounted share) must find its task file."""
    root = Path(data)
    if root.is_dir() and split and (root / split).is_dir():
        root = root / split
    files = sorted(p for p in root.iterdir() if p.is_file()) if root.is_dir() else [root]
    return [(p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in files]


def _tokenizer_stamp(tokenizer: PreTrainedTokenizerBase | None) -> str:
    """What the passage budget counts with: a hash of the tokenizer's vocabulary, not its folder, since a
    packaged model is unpacked to a folder named by the install (another machine, another name)."""
    if tokenizer is None:
        return ""
    vocab = sorted(tokenizer.get_vocab().items())
    return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode()).hexdigest()


# -- task files -------------------------------------------------------------------------------------


def is_task_file(path: str | Path) -> bool:
    """True for a JSONL file whose first record has a `passage` (a saved task file)."""
    path = Path(path)
    if path.suffix.lower() != ".jsonl" or not path.is_file():
        return False
    with path.open(encoding="utf-8") as handle:
        first = handle.readline()
    try:
        return isinstance(record := json.loads(first), dict) and "passage" in record
    except ValueError:
        return False


def write_task_file(path: str | Path, examples: Sequence[TaskExample]) -> Path:
    """Save examples as JSONL (one object per line), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_lines(path, (json.dumps(asdict(e), ensure_ascii=False) for e in examples))
    return path


def read_task_file(path: str | Path) -> list[TaskExample]:
    """Read a task file written by `write_task_file` (or by hand: id, query, passage, target)."""
    examples = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            examples.append(TaskExample(str(record.get("id", lineno)), record["query"], record["passage"],
                                        record.get("target", "")))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise QfsumError(f"{path}:{lineno}: a task record needs 'query' and 'passage' strings") from None
    if not examples:
        raise QfsumError(f"{path}: no examples")
    return examples


# -- encoding -----------------------------------------------------------------------------------------


def answer_ids(tokenizer: PreTrainedTokenizerBase, target: str, max_tokens: int = 256) -> list[int]:
    """The target's tokens and the end-of-turn token that stops generation."""
    ids = tokenizer(target.strip(), add_special_tokens=False)["input_ids"][: max_tokens - 1]
    return ids + [tokenizer.eos_token_id]


def encode(tokenizer: PreTrainedTokenizerBase, example: TaskExample, max_prompt: int = 1024, max_target: int = 256) -> dict[str, list[int]]:
    """Input ids and labels for a causal LM: the loss is on the answer only (prompt labels are IGNORE)."""
    prompt = fitted_prompt_ids(tokenizer, example.query, example.passage, max_prompt)
    answer = answer_ids(tokenizer, example.target, max_target)
    return {"input_ids": prompt + answer, "labels": [IGNORE] * len(prompt) + answer}


def collate(rows: Sequence[dict[str, list[int]]], pad_token_id: int) -> dict[str, Any]:
    """Right-padded tensors (B, T) of encoded rows; padding is masked out and ignored by the loss."""
    import torch

    width = max(len(r["input_ids"]) for r in rows)
    ids = [r["input_ids"] + [pad_token_id] * (width - len(r["input_ids"])) for r in rows]
    labels = [r["labels"] + [IGNORE] * (width - len(r["labels"])) for r in rows]
    mask = [[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in rows]
    return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "attention_mask": torch.tensor(mask)}
