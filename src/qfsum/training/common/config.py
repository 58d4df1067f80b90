"""The base of a training run's options: what identifies the run, and the checks every family makes."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, ClassVar

from ...errors import QfsumError


class RunConfig:
    """Mixed into each family's options dataclass: `identity()` and the option checks they share."""

    NOT_IDENTITY: ClassVar[tuple[str, ...]] = ("out",)  # fields a rerun may change and still resume
    # Fields every family's options have (declared for type checkers; the dataclasses define them).
    out: str
    epochs: float
    max_steps: int | None
    dtype: str

    def identity(self) -> dict[str, Any]:
        """What must match for a rerun to resume this run."""
        data = asdict(self)  # type: ignore[call-overload]  # subclasses are dataclasses
        for name in self.NOT_IDENTITY:
            data.pop(name)
        return data

    def require_counts(self, *names: str) -> None:
        """Each of these fields must be at least 1."""
        for name in names:
            if getattr(self, name) < 1:
                raise QfsumError(f"{name.replace('_', ' ')} must be >= 1, got {getattr(self, name)}")

    def require_length(self) -> None:
        """A run trains for some epochs, or for at least one step."""
        if self.epochs <= 0 or (self.max_steps is not None and self.max_steps < 1):
            raise QfsumError("epochs must be > 0 and max steps >= 1")

    def require_dtype(self) -> None:
        """Training precision: auto (bf16 where the hardware has it) or float32."""
        if self.dtype not in ("auto", "float32"):
            raise QfsumError(f"training dtype must be auto or float32, got '{self.dtype}'")
