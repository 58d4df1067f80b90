"""LOCOST: a state-space encoder (gated bidirectional SSM convolutions, no attention) with a transformer decoder."""

from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM

from .configuration import LocostConfig
from .modeling import LocostForConditionalGeneration

# Registered on import, so `AutoModelForSeq2SeqLM.from_pretrained(dir)` loads saved LOCOST models.
AutoConfig.register(LocostConfig.model_type, LocostConfig, exist_ok=True)
AutoModelForSeq2SeqLM.register(LocostConfig, LocostForConditionalGeneration, exist_ok=True)
AutoModel.register(LocostConfig, LocostForConditionalGeneration, exist_ok=True)

__all__ = ["LocostConfig", "LocostForConditionalGeneration"]
