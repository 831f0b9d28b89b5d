"""The error every check of the model layer raises: the field to change, and what to change."""

from __future__ import annotations


class LayoutError(ValueError):
    """A spec that would never serve; the message says what to change."""

    reason = "LayoutInvalid"

    def __init__(self, field: str, message: str):
        path = field if field.startswith("metadata.") else f"spec.{field}"
        super().__init__(f"{path}: {message}")
        self.field = path


class PodSecurityRefused(LayoutError):
    """The namespace's Pod Security admission would refuse the server's pods."""

    reason = "PodSecurityViolation"
