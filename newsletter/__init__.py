"""newsletter: build responsive HTML newsletters from Markdown issues and send them over SMTP."""

__version__ = "0.1.0"
