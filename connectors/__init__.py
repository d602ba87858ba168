"""Connectors: authorizations and jobs that move data in and out of Strata (enrichment,
exports, imports). Sits above experiences and may import every app below it; nothing imports it."""
