"""Prometheus metrics of the operator (served by `minimax-operator run --metrics-port`)."""

from prometheus_client import Counter

RECONCILES = Counter("minimax_operator_reconciles_total", "Reconciles of MiniMaxDeployments", ["result"])
WRITES = Counter("minimax_operator_writes_total", "Mutating API requests the operator made", ["kind"])
