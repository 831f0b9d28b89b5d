"""Desired objects and computed conditions: pure functions of the model layer's settings.

No I/O: the controllers apply what these return, and `minimax-operator render` prints
it offline, like `helm template`.
"""
