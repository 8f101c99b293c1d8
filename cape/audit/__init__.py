"""The audit log: who changed what, when, before and after, for admin and money changes."""
