"""qfsum: query-focused summarization of long documents, with the evidence it used.

>>> from qfsum import Pipeline
>>> pipeline = Pipeline.load("default")  # doctest: +SKIP
>>> pipeline.summarize(text, "What did they decide about the budget?")  # doctest: +SKIP
"""

from .document import Document, Example, Segment
from .errors import QfsumError
from .pipeline import Pipeline, PipelineConfig, Summary

__version__ = "0.1.0"
__all__ = ["Document", "Example", "Pipeline", "PipelineConfig", "QfsumError", "Segment", "Summary", "__version__"]
