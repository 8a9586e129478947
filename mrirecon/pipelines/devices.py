"""Device choice for the pipelines (it lives in ``mrirecon.devices``, which ``train/`` uses too)."""

from mrirecon.devices import resolve_device

__all__ = ["resolve_device"]
