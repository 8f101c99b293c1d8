"""Insights about conversations: hero moments (a customer's thanks, linked to what the agent did)."""
