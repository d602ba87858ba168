"""The audiences app: its models derive from cdp_site.models.AccountScopedModel."""

from __future__ import annotations
