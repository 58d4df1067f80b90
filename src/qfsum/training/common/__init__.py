"""What every training family shares: run options (`config`), the run record, checkpoints and resuming
(`runs`), the model card (`card`), and the Hugging Face `Trainer` pieces of the extractor and seq2seq
families (`trainer`)."""
