"""Resolution actions within authority, approvals, audit, connectors and hero moments."""
