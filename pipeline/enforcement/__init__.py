"""Enforcement: the penalty policy, plans, the action outbox with HTTP delivery and undo, and
violation notices. Scans never enforce: a person plans, then applies."""

from ..errors import PipelineError


class EnforcementError(PipelineError):
    """A plan, an apply or a delivery was refused (caps, changed cases, missing secret...)."""
