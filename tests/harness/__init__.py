"""The test harness, imported by tests, bench and hack alike (run from the repository root:
`python -m pytest`, `python -m bench.scale`): no `sys.path` edits.

- cluster: the local cluster (hack/cluster.sh), a handle on it, the operator as a process
  under its ServiceAccount, waiting on conditions, the stand-in download executor;
- realnode: the chart's operator and the Hub stand-in on the real node;
- fakehub: a Hugging Face Hub stand-in over HTTP on loopback;
- fake_client: an in-memory client for reconciler unit tests (reads from stores, records writes).
"""
