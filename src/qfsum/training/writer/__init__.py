"""Training the causal (real-time) writer in a loop of our own: task data (`taskdata`), SFT and the
shared loop (`sft`), distillation (`distill`), DPO (`dpo`), and their command options (`cli`)."""
