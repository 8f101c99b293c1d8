"""Channels: one adapter per way customers reach us, each registering its sender at start-up
(``cape.channels.registry.setup``)."""
