"""Event forwarding: events of chosen streams, as received, to a webhook."""

from __future__ import annotations

from connectors.kinds.event_forwarding.kind import EventForwarding

__all__ = ["EventForwarding"]
