"""Deployment-wide settings admins change from the workspace."""
