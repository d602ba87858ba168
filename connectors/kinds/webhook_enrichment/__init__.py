"""Webhook enrichment (the guide's use case 4): call an endpoint per profile and put its JSON
answer into a stream as an event."""

from __future__ import annotations

from connectors.kinds.webhook_enrichment.kind import WebhookEnrichment

__all__ = ["WebhookEnrichment"]
