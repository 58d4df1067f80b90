"""LOCOST: a state-space encoder (gated bidirectional SSM convolutions, no attention) with a transformer decoder."""
