"""Training seq2seq writers with the Hugging Face `Trainer`: the generic trainer (`train`: SegEnc, LED,
plain), LOCOST and its gap-sentence pre-training (`locost`, `gsg`), and their command options (`cli`)."""
