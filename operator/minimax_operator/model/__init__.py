"""From a spec and its preset to the effective settings, and the checks that refuse what cannot serve.

Pure: no I/O. Every layout or storage mistake that would only show up hours later (a
crashing vLLM pod, a claim on the wrong node) is caught here, before any GPU or byte
of storage is requested.
"""
