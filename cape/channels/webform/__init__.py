"""The public contact form: the web-form channel."""
