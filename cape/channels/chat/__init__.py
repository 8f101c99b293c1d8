"""The chat channel: the website widget's visitors, their messages and the replies they see live."""
