"""Passwords, sessions, API tokens, roles and the permission dependencies."""
