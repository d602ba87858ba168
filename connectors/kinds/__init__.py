"""One folder per job kind (as Healthchecks' ``hc/integrations/<kind>/``); each registers a
``connectors.registry.Kind`` subclass. ``connectors.registry`` imports them by name."""
