"""Training relevance extractors (RelReg, RelRegTT, DPR): ROUGE labels of segments (`labels`), training
pairs (`pairs`), validation as `qfsum evaluate-extractor` scores (`validation`), the run (`train`)."""
