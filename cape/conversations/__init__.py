"""Conversations, messages, the activity log and ingest(): the one way in for every channel."""
