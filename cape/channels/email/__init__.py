"""The email channel: IMAP polling, the SMTP listener, parsing, threading and outbound SMTP."""
