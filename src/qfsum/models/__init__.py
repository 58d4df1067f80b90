"""Model architectures that qfsum defines itself (the others come from Hugging Face transformers)."""
