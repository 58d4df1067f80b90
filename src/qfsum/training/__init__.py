"""Training, one folder per family of models, each with its own training set-up:

- `extractor/`: relevance extractors (RelReg, RelRegTT, DPR) learned from ROUGE labels with the
  sentence-transformers trainers;
- `seq2seq/`: end-to-end seq2seq writers (SegEnc, LED, plain, LOCOST and its GSG pre-training) with
  the Hugging Face `Trainer`;
- `writer/`: the causal (real-time) writer's SFT, distillation and DPO, in a loop of our own;
- `common/`: what they share (run options, run record, resume, model card); `export`: a trained
  model copied small enough to ship.

Modules import torch, transformers and the trainers, so import them only to train.
"""
