"""Realtime: what happens reaches the screens that show it, in this process or, through Redis, in every one."""
