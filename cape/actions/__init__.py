"""Resolution actions within authority, approvals, fulfilment through connectors, audit and review."""
