"""Channel adapters: each turns a provider's payload into an InboundMessage for ingest()."""
