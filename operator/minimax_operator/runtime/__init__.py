"""A small controller runtime, like controller-runtime's: a REST client, informers and their stores,
a de-duplicating work queue, the loop of workers, leader election, health and metrics.

It knows no MiniMax kind: the controllers hand it a kind table (kinds.Kind) and say which
objects' changes queue which keys.
"""
