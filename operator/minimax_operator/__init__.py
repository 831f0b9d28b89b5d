"""minimax-operator: serve MiniMax open-weight models with vLLM on Kubernetes and register them in ChatOS."""

__version__ = "0.1.0"
