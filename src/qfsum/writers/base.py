"""The writer protocol, its config (`WriterConfig`), and the registry of writer kinds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
import math
from dataclasses import dataclass
from typing import Protocol

from ..errors import QfsumError
from ..document import Draft, Evidence

# kind -> "module:factory"; the factory takes a WriterConfig. Imported lazily: a kind's heavy
# dependencies load only when a pipeline uses it. Add a writer kind by adding a line here.
WRITER_FACTORIES: dict[str, str] = {
    "extractive": "qfsum.writers.extractive:build_extractive_writer",
    "generative": "qfsum.writers.generative:GenerativeWriter",
    "segenc": "qfsum.writers.seq2seq_writers:SegEncWriter",  # reads the whole document; scorer lead
    "led": "qfsum.writers.seq2seq_writers:LEDWriter",  # reads the whole document; scorer lead
    "bart": "qfsum.writers.seq2seq_writers:TruncatingWriter",  # query + document cut at the model limit
    "locost": "qfsum.writers.locost_writer:LocostWriter",  # reads the whole document (64K tokens); scorer lead
}
WRITER_KINDS = tuple(WRITER_FACTORIES)
RUNTIMES = ("torch", "ctranslate2", "onnxruntime-genai", "auto")  # what runs a generative writer's model (ctranslate2, onnxruntime-genai: pip install 'qfsum[fast]')
# auto: onnxruntime-genai in float32 where it is installed and takes the model, else torch; both give the
# same float32 answers, token for token (writers.generative.load_model)
AUTO_DTYPE = "float32"
# the dtypes each fast CPU runtime takes (auto: its default, int8 for CTranslate2, int4 for ONNX Runtime GenAI)
RUNTIME_DTYPES = {"ctranslate2": ("auto", "int8", "float32"), "onnxruntime-genai": ("auto", "int4", "float32")}
# English text is about 1.3 tokens a word for these tokenizers; a little room, as the answer is then
# cut back to its last whole sentence
TOKENS_PER_WORD = 1.5


class Writer(Protocol):
    """Writes one summary per (query, ranked evidence) pair."""

    def write_batch(self, queries: Sequence[str], ranked: Sequence[Sequence[Evidence]],
                    words: int | Sequence[int | None] | None = None,
                    on_text: Callable[[int, str], None] | None = None,
                    wanted: Callable[[int], bool] | None = None) -> list[Draft]:
        """`ranked[i]` is every segment for `queries[i]`, most relevant first. `words`: the answers' length,
        one for all or one per query (None: the config's `summary_words`). `on_text(i, text)`: answer i's
        new text while it is decoded (`writers.streaming`); writers that do not decode never call it.
        `wanted(i)`: False once nobody waits for answer i, which may then stop early (`writers.wanted`)."""
        ...


@dataclass
class WriterConfig:
    """Which writer to build and its knobs."""

    kind: str = "extractive"  # a key of WRITER_FACTORIES: extractive | generative (any causal or seq2seq LM) | ...
    model: str | None = None  # generative: packaged name (smollm2), local directory or hub id
    summary_words: int | None = None  # the answer's length in words: extractive (default 100); model writers: about so many (sets max_new_tokens)
    min_content_words: int | None = None  # extractive: skip segments with fewer distinct content words (default 2; 0 keeps filler)
    input_tokens: int | None = None  # model writers: tokens the model reads; generative: the whole prompt (1024); segenc, locost: the document (the model's max_input; locost 65,536); led, bart: query + document (the model's limit)
    max_new_tokens: int = 200  # generative: length limit of the answer
    no_repeat_ngram_size: int = 3  # generative: small models loop without it (within the answer: copying the prompt stays allowed)
    repetition_penalty: float = 1.0  # generative: > 1 discourages repeating any earlier token
    num_beams: int = 1  # generative: 1 = greedy
    batch_size: int = 4  # generative: queries per generate() call
    dtype: str = "auto"  # generative: auto (bf16 where the hardware has it), float32, bfloat16, float16
    decoding: str = "greedy"  # generative causal LMs: greedy | lookahead (same output, fewer forward passes)
    grounded_numbers: bool = False  # model writers: write a number only if the evidence states it (writers.grounded)
    grounded_names: bool = False  # model writers: capitalise a word inside a sentence only if the evidence does
    evidence_bias: float = 0.0  # model writers: added to the logits of the evidence's tokens (> 0 favours copying its words)
    runtime: str = "torch"  # generative causal LMs: torch | ctranslate2 | onnxruntime-genai (greedy on CPU, same processors; dtype auto = int8 / int4 weights, or float32; writers.ct2_runtime, writers.ortgenai_runtime) | auto (float32: onnxruntime-genai where it can, else torch; the same answers)

    def __post_init__(self) -> None:
        if self.kind not in WRITER_KINDS:
            raise QfsumError(f"unknown writer '{self.kind}' (choose from {', '.join(WRITER_KINDS)})")
        if self.kind != "extractive" and not self.model:
            raise QfsumError(f"the {self.kind} writer needs a model (e.g. smollm2, a directory or a hub id)")
        for name in ("summary_words", "input_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise QfsumError(f"writer {name} must be >= 1, got {value}")
        if self.min_content_words is not None and self.min_content_words < 0:
            raise QfsumError(f"writer min_content_words must be >= 0, got {self.min_content_words}")
        if self.kind != "extractive" and self.min_content_words is not None:
            raise QfsumError("min_content_words is the extractive writer's; model writers read all their evidence")
        if not (0 <= self.evidence_bias < math.inf):
            raise QfsumError(f"writer evidence_bias must be >= 0 and finite, got {self.evidence_bias}")
        if self.kind == "extractive" and self.evidence_bias:
            raise QfsumError("evidence_bias is the model writers'; the extractive writer copies its evidence already")
        if self.kind == "extractive" and self.input_tokens is not None:
            raise QfsumError("the extractive writer's length is summary_words, not input_tokens")
        if self.runtime not in RUNTIMES:
            raise QfsumError(f"unknown writer runtime '{self.runtime}' (choose from {', '.join(RUNTIMES)})")
        if self.runtime in RUNTIME_DTYPES and (self.kind != "generative" or self.dtype not in RUNTIME_DTYPES[self.runtime]):
            _, weights, _ = RUNTIME_DTYPES[self.runtime]
            raise QfsumError(f"the {self.runtime} runtime runs the generative writer with dtype auto ({weights}), {weights} or float32")
        if self.runtime == "auto" and (self.kind != "generative" or self.dtype != AUTO_DTYPE):
            raise QfsumError(f"runtime auto runs the generative writer in {AUTO_DTYPE} (the dtype in which every runtime "
                             f"gives the same answers); set dtype {AUTO_DTYPE} or name a runtime")

    def new_tokens(self) -> int:
        """The model writers' limit on answer tokens: from `summary_words` when set, else `max_new_tokens`."""
        return math.ceil(self.summary_words * TOKENS_PER_WORD) if self.summary_words else self.max_new_tokens

    @classmethod
    def from_dict(cls, data: dict) -> "WriterConfig":
        """A config from `pipeline.json`; the single `budget` of files written before 2026-11-25 is read
        in the unit of the writer's kind (words for extractive, input tokens for the others)."""
        data = dict(data)
        if "budget" in data:
            unit = "summary_words" if data.get("kind", "extractive") == "extractive" else "input_tokens"
            data.setdefault(unit, data.pop("budget"))
        return cls(**data)


def build_writer(config: WriterConfig) -> Writer:
    """Build the writer a config names."""
    import importlib

    module, _, factory = WRITER_FACTORIES[config.kind].partition(":")
    return getattr(importlib.import_module(module), factory)(config)
