"""One-off emails to a single person (the sign-up confirmation).

The wording is the template `notices/confirm.txt.j2` (copy it into the project's templates/
folder to change it). The body is made by `email`; the headers by `headers`, like a newsletter
copy's, so that an address beyond ASCII goes out as the relay needs it (IDNA domain, UTF-8
local part).
"""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from jinja2 import Environment

from newsletter.compose.templates import render
from newsletter.config import Config
from newsletter.deliver.addresses import ascii_domain
from newsletter.deliver.headers import address_header, header_line

CONFIRM_TEMPLATE = "notices/confirm.txt.j2"


def confirmation_email(
    config: Config, env: Environment, email: str, first_name: str, link: str
) -> bytes:
    """The message asking `email` to confirm a subscription by following `link`."""
    context = {"config": config, "first_name": first_name, "link": link}
    subject, _, text = render(env, CONFIRM_TEMPLATE, context).partition("\n\n")
    body = EmailMessage()
    body.set_content(text, cte="quoted-printable")
    reply_to = config.sender.reply_to
    return b"".join(
        [
            address_header("From", config.sender.name, config.sender.address),
            address_header("To", "", email),
            header_line("Subject", subject.removeprefix("Subject:").strip()),
            header_line("Date", formatdate(usegmt=True)),
            header_line("Message-ID", make_msgid(domain=ascii_domain(config.sender_domain))),
            address_header("Reply-To", "", reply_to) if reply_to else b"",
            b"Auto-Submitted: auto-generated\r\n",
            body.as_bytes(policy=policy.SMTP),
        ]
    )
