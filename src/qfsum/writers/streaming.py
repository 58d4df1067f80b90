"""Text as a model writer produces it: each answer's new text, handed on while the batch decodes.

A writer's `write_batch(..., on_text=callback)` calls `callback(position, text)` with the text each
answer (its position in the batch) has gained. The pieces concatenate to the raw draft: the decoded
new tokens, leading whitespace dropped, before the writer cuts it to whole sentences. Writers that
produce no text token by token (extractive) never call it.

Decoding token by token is not prefix-stable: a byte-level character arrives in several tokens
('\\ufffd' until the last one), a WordPiece word grows by '##' pieces, and a tokenizer's clean-up
joins " ." into "." once the full stop arrives. So, as `transformers`' TextStreamer does, the whole
answer so far is decoded again at each step and only its stable part is handed on: everything before
its last whitespace (the last word may still change), or all of it after a CJK character.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

TextCallback = Callable[[int, str], None]  # (position in the batch, new text of that answer)
_LAST_WORD = re.compile(r"\s+\S*\Z")  # the last whitespace run and whatever follows it


def _is_cjk(char: str) -> bool:
    """Whether a character is a CJK ideograph (written without spaces: never held back)."""
    code = ord(char)
    return (0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0x20000 <= code <= 0x2FA1F
            or 0xF900 <= code <= 0xFAFF or 0x3000 <= code <= 0x30FF or 0xAC00 <= code <= 0xD7AF)


def stable_prefix(text: str) -> str:
    """The part of a growing decoded text that later tokens cannot change."""
    if text and _is_cjk(text[-1]):
        return text
    match = _LAST_WORD.search(text)
    return text[: match.start()] if match else ""


class TextDeltas:
    """One answer's text as its tokens arrive, handed to `emit` in pieces that never change afterwards."""

    def __init__(self, tokenizer: Any, emit: Callable[[str], None]) -> None:
        self.tokenizer = tokenizer
        self.emit = emit
        self.ids: list[int] = []
        self.sent = ""  # the text handed on so far

    def push(self, ids: Iterable[int]) -> None:
        """Add new tokens; hand on the text that is now stable."""
        self.ids.extend(ids)
        self._send(stable_prefix(self.text()))

    def finish(self) -> None:
        """The answer is complete: hand on the rest."""
        self._send(self.text())

    def text(self) -> str:
        """The answer so far, decoded as the writer decodes it (special tokens skipped)."""
        return self.tokenizer.decode(self.ids, skip_special_tokens=True).lstrip()

    def _send(self, text: str) -> None:
        # a prefix check, so a tokenizer that rewrites earlier text cannot make the pieces disagree
        if len(text) > len(self.sent) and text.startswith(self.sent):
            self.emit(text[len(self.sent) :])
            self.sent = text


class BatchStreamer:
    """A `generate()` streamer for a batch of any size (transformers' TextStreamer takes one row):
    each row's tokens go to its own `TextDeltas` up to its first end-of-sequence token (generate() pads
    finished rows). `push(row, tokens)` serves decoders that emit several tokens at once (lookahead)."""

    def __init__(self, rows: Sequence[TextDeltas], eos_token_ids: Iterable[int] = ()) -> None:
        self.rows = list(rows)
        self.eos = set(eos_token_ids)
        self.done = [False] * len(self.rows)
        self._prompt_seen = False

    @classmethod
    def for_positions(cls, tokenizer: Any, positions: Sequence[int], on_text: TextCallback,
                      eos_token_id: int | Sequence[int] | None) -> "BatchStreamer":
        """A streamer whose row `r` reports as batch position `positions[r]`."""
        eos = [] if eos_token_id is None else [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
        rows = [TextDeltas(tokenizer, _bound(on_text, position)) for position in positions]
        return cls(rows, eos)

    def put(self, value: Any) -> None:
        """generate()'s hook: first the prompt (causal) or the decoder's start ids (seq2seq), skipped;
        then each step's tokens, one per row."""
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        for row, tokens in enumerate(value.reshape(len(self.rows), -1).tolist()):
            self.push(row, tokens)

    def push(self, row: int, tokens: Sequence[int]) -> None:
        """New tokens of one row; those after its end-of-sequence token are padding."""
        if self.done[row]:
            return
        kept = []
        for token in tokens:
            kept.append(token)
            if token in self.eos:
                self.done[row] = True
                break
        self.rows[row].push(kept)
        if self.done[row]:
            self.rows[row].finish()

    def end(self) -> None:
        """generate()'s hook at the end: rows stopped by the length limit hand on their rest."""
        for row, deltas in enumerate(self.rows):
            if not self.done[row]:
                self.done[row] = True
                deltas.finish()


def _bound(on_text: TextCallback, position: int) -> Callable[[str], None]:
    def emit(text: str) -> None:
        on_text(position, text)
    return emit
