"""Model architectures of qfsum (importing a submodule registers it with transformers' Auto classes)."""
