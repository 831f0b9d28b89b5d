"""The API users write and read: kinds, fields, presets, owned flags, and the names on the objects.

Pure data and validation (pydantic); imports nothing else of the package but `protocol`.
"""
