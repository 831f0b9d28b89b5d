"""Prometheus metrics of the operator (served by `minimax-operator run --metrics-port`)."""

from prometheus_client import Counter, Gauge

RECONCILES = Counter("minimax_operator_reconciles_total", "Reconciles, by result", ["result"])
WRITES = Counter("minimax_operator_writes_total", "Mutating API requests the operator made", ["kind"])
LEADER = Gauge("minimax_operator_leader", "1 while this replica holds the leader Lease and reconciles")
QUEUE_DEPTH = Gauge("minimax_operator_queue_depth", "Resources waiting in the work queue for a worker")
