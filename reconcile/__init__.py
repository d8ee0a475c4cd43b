"""reconcile: make LLM model registries match what is declared in git."""

__version__ = "0.1.0"
