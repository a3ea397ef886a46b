"""One-off emails to a single person (the sign-up confirmation).

The body is made by `email`; the headers by `headers`, like a newsletter copy's, so that an
address beyond ASCII goes out as the relay needs it (IDNA domain, UTF-8 local part).
"""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from newsletter.config import Config
from newsletter.deliver.addresses import ascii_domain
from newsletter.deliver.headers import address_header, header_line


def confirmation_email(config: Config, email: str, first_name: str, link: str) -> bytes:
    """The message asking `email` to confirm a subscription by following `link`."""
    hello = f"Hi {first_name}," if first_name else "Hello,"
    text = (
        f"{hello}\n\nSomeone, hopefully you, asked to receive {config.name} at this address.\n"
        f"To confirm, open this link and press the button:\n\n{link}\n\n"
        f"If it wasn't you, ignore this email: nothing will be sent.\n\n"
        f"{config.name}\n{config.postal_address}\n"
    )
    body = EmailMessage()
    body.set_content(text, cte="quoted-printable")
    reply_to = config.sender.reply_to
    return b"".join(
        [
            address_header("From", config.sender.name, config.sender.address),
            address_header("To", "", email),
            header_line("Subject", f"Confirm your subscription to {config.name}"),
            header_line("Date", formatdate(usegmt=True)),
            header_line("Message-ID", make_msgid(domain=ascii_domain(config.sender_domain))),
            address_header("Reply-To", "", reply_to) if reply_to else b"",
            b"Auto-Submitted: auto-generated\r\n",
            body.as_bytes(policy=policy.SMTP),
        ]
    )
