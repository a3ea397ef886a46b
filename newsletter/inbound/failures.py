"""Finding the failed recipients of a bounce, each with its status code and the words about it.

In order of trust: the `message/delivery-status` parts of RFC 3464 read with the `email`
package; DSN fields that arrive as plain text (forwarded or broken MIME); the JSON of an
Amazon SES notification; and last the MTA's prose, where flufl.bounce finds the addresses.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from typing import Any

import flufl.bounce

from newsletter.inbound.parts import all_text, header, outer_parts, text_of
from newsletter.inbound.rules import best_status, enhanced_status


@dataclass(frozen=True)
class Failure:
    """One failed or delayed recipient as the bounce reports it."""

    address: str
    status: str
    diagnostic: str
    transient: bool
    context: str = ""


FAILED_ACTIONS = ("failed", "delayed", "expired")  # "expired": SendGrid's word for failed


def field_address(value: str) -> str:
    """The address of an `rfc822; user@example.org` field."""
    address = value.partition(";")[2] if ";" in value else value
    return address.strip().strip("<>").strip().strip("'\"")


def _failure_of(block: Message) -> Failure | None:
    """The failure one per-recipient DSN block reports, or None (delivered, relayed, other)."""
    address = field_address(header(block, "Final-Recipient") or header(block, "Original-Recipient"))
    if "@" not in address:
        return None
    action = header(block, "Action").lower()
    code = header(block, "Diagnostic-Code")
    diagnostic = code.partition(";")[2].strip() if ";" in code[:12] else code
    status = best_status(enhanced_status(header(block, "Status")), diagnostic)
    if not (action.startswith(FAILED_ACTIONS) or (not action and status[:1] in "45")):
        return None
    if not status and not action:
        return None
    given_up_on_address = action.startswith("failed") and status.startswith("4.1.")
    transient = action.startswith("delayed") or (status[:1] == "4" and not given_up_on_address)
    status = status or ("4.0.0" if transient else "")
    return Failure(address, status, diagnostic, transient)


def is_dsn(msg: Message) -> bool:
    """True when `msg` carries a delivery-status part."""
    return any(p.get_content_type().endswith("delivery-status") for p in outer_parts(msg))


def dsn_failures(msg: Message) -> list[Failure]:
    """The failed or delayed recipients of the message/delivery-status parts (RFC 3464); those
    of a report returned inside the bounce when the bounce itself has none."""
    return _status_parts(outer_parts(msg)) or _status_parts(list(msg.walk()))


def _status_parts(parts: list[Message]) -> list[Failure]:
    found: list[Failure] = []
    for part in parts:
        if not part.get_content_type().endswith("delivery-status"):
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            blocks = [b for b in payload if isinstance(b, Message)]
        else:
            blocks = _field_blocks(text_of(part))
        found.extend(f for b in blocks if (f := _failure_of(b)) is not None)
    return found


_RECORD_START = re.compile(r"^[ \t]*(Original|Final)-Recipient:", re.IGNORECASE | re.MULTILINE)


def _field_blocks(text: str) -> list[Message]:
    """Per-recipient DSN blocks in plain text, split where a new recipient's fields begin."""
    text = text.replace("\r\n", "\n")
    starts = [m.start() for m in _RECORD_START.finditer(text)]
    blocks = []
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else len(text)
        chunk = text[start:end].lstrip()
        blocks.append(HeaderParser().parsestr(chunk.split("\n\n")[0]))
    merged: list[Message] = []
    for block in blocks:
        if merged and "Final-Recipient" not in merged[-1] and "Original-Recipient" in merged[-1]:
            for key, value in block.items():
                merged[-1][key] = value
        else:
            merged.append(block)
    return merged


def text_dsn_failures(msg: Message) -> list[Failure]:
    """DSN fields that arrive as text: a forwarded bounce, or MIME that did not parse."""
    return [f for b in _field_blocks(all_text(msg)) if (f := _failure_of(b)) is not None]


def ses_notification(msg: Message) -> dict[str, Any] | None:
    """The JSON of an Amazon SES notification sent by email, or None."""
    for part in outer_parts(msg):
        if part.is_multipart() or part.get_content_maintype() not in ("text", "application"):
            continue
        # Long JSON lines come folded as "!" CRLF SP by MTAs that cut lines at 998 octets.
        text = re.sub(r"!\r?\n ", "", text_of(part))
        start = text.find('{"notificationType"')
        if start < 0:
            start = text.find('{"eventType"')
        if start < 0:
            continue
        try:
            data, _ = json.JSONDecoder().raw_decode(text[start:])
        except ValueError:
            continue
        if isinstance(data, dict):
            return data
    return None


def ses_kind(data: dict[str, Any]) -> str:
    """ "Bounce", "Complaint", "Delivery", ... of an SES notification or published event."""
    return str(data.get("notificationType") or data.get("eventType") or "")


def ses_failures(data: dict[str, Any]) -> list[Failure]:
    """The bounced recipients of an SES bounce notification."""
    bounce = data.get("bounce") or {}
    transient = bounce.get("bounceType") == "Transient"
    found = []
    for item in bounce.get("bouncedRecipients") or []:
        address = str(item.get("emailAddress", ""))
        if "@" in address:
            code = str(item.get("diagnosticCode") or "")
            diagnostic = code.partition(";")[2].strip() if ";" in code[:12] else code
            status = best_status(enhanced_status(str(item.get("status") or "")), diagnostic)
            context = f"{bounce.get('bounceType', '')} {bounce.get('bounceSubType', '')}"
            found.append(Failure(address, status, diagnostic, transient, context))
    return found


# --- bounces in an MTA's own words -----------------------------------------------------------

# flufl.bounce logs a traceback before re-raising a detector's error; that is caught below, so
# its log stays out of the user's terminal.
logging.getLogger("flufl.bounce").addHandler(logging.NullHandler())

_ADDRESS = r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
_FAILED_LINE = re.compile(
    r"^\s*(?:"
    rf"<({_ADDRESS})>\s*(?::|\.\.\.|\(|$)"  # qmail `<a>:`, sendmail `<a>... reason`
    rf"|\d{{3}}\s+<({_ADDRESS})>\.\.\."  # old sendmail `550 <a>... reason`
    rf"|({_ADDRESS})\s*(?:<mailto:[^>]*>)?\s*$"  # the address alone on its line
    rf"|({_ADDRESS})\s*(?::|\(|\[|\.\.\.|\s+on\s+\d)"  # `a: why`, `a (why)`, `a [why]`
    rf"|.*RCPT TO:\s*<?({_ADDRESS})"  # a transcript of the refused command
    rf"|.*\b(?:to|address|recipient)\s*:?\s*<({_ADDRESS})>"  # `delivering ... to <a>`
    rf"|.*\brecipients?\b[^:\n]{{0,40}}:\s*<?({_ADDRESS})"  # `the following recipients ...: a`
    r")",
    re.IGNORECASE | re.MULTILINE,
)
_NOT_RECIPIENT = re.compile(r"^(postmaster|mailer-daemon|abuse|support|help|noc)@", re.IGNORECASE)
_SMTP_REPLY = re.compile(r"\b([45])\d\d[\s-]")
_NEW_ITEM = re.compile(r"^\s*(\d{3}[ -]\S+ \(|while talking|-{3,}|={3,}|\*{3,})", re.IGNORECASE)
_DELAYED = re.compile(r"\bdelayed\b|will (continue to )?retry|not yet been delivered", re.I)


def prose_failures(msg: Message, text: str, looks_like_bounce: bool) -> list[Failure]:
    """Failed recipients of a bounce in prose, each with the words that explain it.

    flufl.bounce finds them; where it finds none in a message that reads as a bounce, the
    lines that name one address the way MTAs list failed recipients are taken.
    """
    found = [a.decode("utf-8", "replace") for a in sorted(_flufl_failures(msg))]
    lines = text.splitlines()
    if not found and looks_like_bounce:
        matches = (_FAILED_LINE.match(line[:2000]) for line in lines)
        named = (next(g for g in m.groups() if g) for m in matches if m)
        found = [a for a in dict.fromkeys(named) if not _NOT_RECIPIENT.match(a)]
    others = {a.lower() for a in found}
    failures = []
    for address in dict.fromkeys(found):
        words = context(lines, address, others) or text
        status = enhanced_status(words, failures_only=True)
        reply = _SMTP_REPLY.search(words)
        first = status or (reply.group(1) if reply else "5")
        transient = first.startswith("4") or bool(_DELAYED.search(words))
        failures.append(Failure(address, status, _squeeze(words), transient))
    return failures


def _flufl_failures(msg: Message) -> frozenset[bytes]:
    """The addresses flufl.bounce finds failing, temporarily or for good; none where one of
    its detectors trips over a malformed message (it raises whatever it met)."""
    try:
        temporary, permanent = flufl.bounce.all_failures(msg)
    except Exception:  # a detector's bug on odd input must not stop the run
        return frozenset()
    return temporary | permanent


def context(lines: list[str], address: str, others: set[str], diagnostic: str = "") -> str:
    """The lines about one recipient: each line naming it (or its diagnostic) and the lines
    that follow, up to a blank line, another recipient or a new item; with the command
    line before a transcript's reply."""
    picked: list[str] = []
    lowered = address.lower()
    probe = " ".join(diagnostic.split())[:40].lower()
    for i, line in enumerate(lines):
        low = " ".join(line.split()).lower()
        if lowered not in low and not (probe and probe[:25] in low):
            continue
        for back in (2, 1):
            if i >= back and lines[i - back].lstrip().startswith((">>>", "<<<")):
                picked.append(lines[i - back])
        picked.append(line)
        for follow in lines[i + 1 : i + 8]:
            flow = follow.lower()
            if not follow.strip() or _NEW_ITEM.match(follow):
                break
            if any(o in flow for o in others if o != lowered):
                break
            picked.append(follow)
    return "\n".join(dict.fromkeys(picked))


def _squeeze(text: str) -> str:
    return " ".join(text.split())[:500]
