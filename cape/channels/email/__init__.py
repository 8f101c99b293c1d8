"""The email channel: IMAP polling, the SMTP listener, parsing, threading and outbound SMTP."""

from cape import jobs

jobs.TASK_MODULES.append("cape.channels.email.tasks")
