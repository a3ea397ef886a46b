"""One-off emails to a single person (the sign-up confirmation), built with `email`."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid

from newsletter.config import Config


def confirmation_email(config: Config, email: str, first_name: str, link: str) -> bytes:
    """The message asking `email` to confirm a subscription by following `link`."""
    hello = f"Hi {first_name}," if first_name else "Hello,"
    text = (
        f"{hello}\n\nSomeone, hopefully you, asked to receive {config.name} at this address.\n"
        f"To confirm, open this link and press the button:\n\n{link}\n\n"
        f"If it wasn't you, ignore this email: nothing will be sent.\n\n"
        f"{config.name}\n{config.postal_address}\n"
    )
    message = EmailMessage()
    message["From"] = formataddr((config.sender.name, config.sender.address))
    message["To"] = email
    message["Subject"] = f"Confirm your subscription to {config.name}"
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=config.sender_domain)
    if config.sender.reply_to:
        message["Reply-To"] = config.sender.reply_to
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    return message.as_bytes()
