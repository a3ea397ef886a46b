"""One-off emails to a single person (the sign-up confirmation), built with `email`.

The wording is the template `notices/confirm.txt.j2` (copy it into the project's templates/
folder to change it).
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid

from jinja2 import Environment

from newsletter.compose.templates import render
from newsletter.config import Config

CONFIRM_TEMPLATE = "notices/confirm.txt.j2"


def confirmation_email(
    config: Config, env: Environment, email: str, first_name: str, link: str
) -> bytes:
    """The message asking `email` to confirm a subscription by following `link`."""
    context = {"config": config, "first_name": first_name, "link": link}
    subject, _, text = render(env, CONFIRM_TEMPLATE, context).partition("\n\n")
    message = EmailMessage()
    message["From"] = formataddr((config.sender.name, config.sender.address))
    message["To"] = email
    message["Subject"] = subject.removeprefix("Subject:").strip()
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=config.sender_domain)
    if config.sender.reply_to:
        message["Reply-To"] = config.sender.reply_to
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    return message.as_bytes()
