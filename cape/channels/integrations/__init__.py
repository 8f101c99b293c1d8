"""The API channel: messages posted by integrations, answered through the integration's webhook."""
