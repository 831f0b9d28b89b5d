"""The download Job's program: `minimax-operator download` and `minimax-operator prune`.

It runs in its own pod and stands alone: it imports nothing of the package but
`protocol` (the claim's layout, marker names, progress and result lines), which the
operator reads too. An import-linter contract keeps it so.
"""
