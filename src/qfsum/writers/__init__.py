"""Writers: turn the ranked evidence for a query into the summary text."""

from .base import Writer, WriterConfig, build_writer
from ..document import Draft, Evidence

__all__ = ["Draft", "Evidence", "Writer", "WriterConfig", "build_writer"]
