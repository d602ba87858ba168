"""Audience export to a webhook: a full sync of the members, then only the changes (read from
the membership change log with a cursor), as signed batches (PROTOCOLS.md)."""

from __future__ import annotations

from connectors.kinds.audience_webhook.kind import AudienceWebhook

__all__ = ["AudienceWebhook"]
