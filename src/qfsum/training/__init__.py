"""Training: relevance extractors (RelReg, RelRegTT, DPR) from ROUGE labels.

Modules import sentence-transformers, transformers and datasets, so import them only to train.
"""
