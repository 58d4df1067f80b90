"""The `locost` writer: a LOCOST model reads the query and the whole document (up to `budget` tokens).

LOCOST's encoder has no position table and costs O(L log L), so the default input limit is far above
what attention models read: 65,536 tokens (`WriterConfig.input_tokens` changes it). Pipelines using it score
with `lead`: every segment reaches the writer, which joins them in document order.
"""

from __future__ import annotations

from .base import WriterConfig
from .seq2seq_writers import Seq2SeqWriter

DEFAULT_MAX_INPUT = 65536  # as qfsum.training.seq2seq.locost.MAX_INPUT, the saved tokenizer's limit


class LocostWriter(Seq2SeqWriter):
    """Query and document, cut at `budget` tokens (default 65,536), summarized by a saved LOCOST model."""

    arch = "plain"  # loaded through AutoModelForSeq2SeqLM, which knows LOCOST once it is registered

    def __init__(self, config: WriterConfig) -> None:
        import qfsum.models.locost  # noqa: F401  (registers LOCOST with the Auto classes)

        super().__init__(config)
        self.inputs.max_length = config.input_tokens or DEFAULT_MAX_INPUT
