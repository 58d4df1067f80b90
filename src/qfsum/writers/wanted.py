"""Answers nobody waits for any more: a batch stops decoding them.

A server runs several clients' questions as one batch. When a client leaves or its request times
out while the batch decodes, its answer is no longer wanted, yet it would be decoded to its end,
and the batch (and every request behind it) would wait for it. A writer's
`write_batch(..., wanted=wanted)` asks `wanted(position)` between decoding steps; once it says False,
that answer ends at the next step (its text so far is returned and thrown away by the caller), and a
batch whose answers are all unwanted ends at once. The answers still wanted come out exactly as
they would have: each row of a batch is decoded independently.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

Wanted = Callable[[int], bool]  # (position of an answer in the batch) -> whether anyone still waits for it


def for_positions(wanted: Wanted | None, positions: Sequence[int]) -> Wanted | None:
    """`wanted` for a sub-batch whose row r is answer `positions[r]` of the whole batch."""
    if wanted is None:
        return None
    return lambda row: wanted(positions[row])


def unwanted_rows(wanted: Wanted | None, rows: int) -> set[int]:
    """The rows (0 .. rows-1) no longer wanted; a `wanted` that fails counts its row as still wanted."""
    if wanted is None:
        return set()
    gone = set()
    for row in range(rows):
        try:
            if not wanted(row):
                gone.add(row)
        except Exception:  # noqa: BLE001 -- a broken predicate must not fail the batch: decode as usual
            pass
    return gone


def stopping_criteria(wanted: Wanted | None, num_beams: int = 1) -> dict[str, Any]:
    """`generate()`'s keyword arguments that end the unwanted rows (none when `wanted` is None)."""
    if wanted is None:
        return {}
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Unwanted(StoppingCriteria):
        """Marks each unwanted row (all beams of its answer) as done; `generate` pads it from then on."""

        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
            answers = input_ids.shape[0] // num_beams
            gone = unwanted_rows(wanted, answers)
            done = [row // num_beams in gone for row in range(input_ids.shape[0])]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return {"stopping_criteria": StoppingCriteriaList([Unwanted()])}
