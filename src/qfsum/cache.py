"""Caches of per-document work (segments, BM25 indexes, embeddings), bounded in entries and bytes."""

from __future__ import annotations

import hashlib
import sys
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from .document import Segment

T = TypeVar("T")
CACHE_BYTES = 256 * 2**20  # per cache of per-document work: a bound in bytes, besides the count
SEGMENT_OVERHEAD = 200  # bytes of one Segment object besides its text (instance, dict, ints)


def segments_key(segments: Sequence[Segment]) -> str:
    """A cache key for one segmentation of one document."""
    digest = hashlib.sha1()
    for segment in segments:
        digest.update(f"{segment.start}:{segment.end}:".encode())
        digest.update(segment.text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


class LRUCache(Generic[T]):
    """A small least-recently-used cache for per-document work (indexes, embeddings).

    It holds at most `capacity` entries and, with `max_bytes`, at most that many bytes as `sizeof`
    counts them, so a few huge documents cannot fill memory (the newest entry is always kept).
    """

    def __init__(self, capacity: int = 64, max_bytes: int | None = None,
                 sizeof: Callable[[T], int] | None = None) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.sizeof = sizeof
        self.bytes = 0  # held, as sizeof counts (0 without it)
        self._items: OrderedDict[str, tuple[T, int]] = OrderedDict()

    def get_or_make(self, key: str, make: Callable[[], T]) -> T:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key][0]
        value = make()
        size = self.sizeof(value) if self.sizeof else 0
        self._items[key] = (value, size)
        self.bytes += size
        while len(self._items) > self.capacity or (len(self._items) > 1 and self.max_bytes is not None
                                                   and self.bytes > self.max_bytes):
            self.bytes -= self._items.popitem(last=False)[1][1]
        return value


def segments_nbytes(segments: Sequence[Segment]) -> int:
    """About the memory a list of segments holds: their texts plus a fixed cost per object."""
    return sum(sys.getsizeof(s.text) for s in segments) + SEGMENT_OVERHEAD * len(segments)
