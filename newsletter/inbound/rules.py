"""Every rule that turns a failure into a class, in one table, and the one function that reads it.

A class says what the failure means for the reader:

    hard    the address is dead (no such user or domain, moved, refuses all mail): suppress it
    soft    the mailbox exists but could not take this copy now (full, timed out, delayed)
    policy  the receiver refused the sender or the content (blocks, reputation, RBLs, SPF/DKIM/
            DMARC, spam or virus filters, rate limits, relaying, protocol): a sender-side matter

A rule matches the exact wording of one common system (`first`, read before anything else),
the enhanced status code of RFC 3463 (`status`, a prefix such as "5.1.1" or
"5.7"), the wording of the diagnostic (`text`, a case-insensitive regular expression, read with
addresses and host names blanked so that `filtered@` or `relay1.` say nothing), or the SMTP
transcript around it (`session`: a refusal at DATA or MAIL FROM is not about the recipient).
Rules are read in the order of the table, so policy comes first: when a failure could be
read as both a dead address and a refusal, the reader is never suppressed for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Literal

Klass = Literal["hard", "soft", "policy"]


@dataclass(frozen=True)
class Rule:
    """One pattern, the class it gives, and why."""

    klass: Klass
    reason: str
    text: str = ""
    status: str = ""
    session: str = ""
    first: str = ""
    lives: bool = False  # the wording tells of a mailbox that exists, whatever the code says


RULES: tuple[Rule, ...] = (
    # --- where in the SMTP session the refusal came (read on the transcript) ------------------
    Rule(
        "policy",
        "refused after the message was sent (at DATA): a filter, not a dead address",
        session=r"in reply to end of data|after end of data|after data\b"
        r"|>>> data\s*\n\s*<<<\s*[45]",
    ),
    Rule(
        "policy",
        "the sender was refused (at MAIL FROM): a sender-side matter",
        session=r"in reply to mail from|after mail from|>>> mail from:.*\n\s*<<<\s*[45]",
    ),
    Rule(
        "soft",
        "the receiver's local delivery program failed",
        session=r"procmail|maildrop|couldn'?t create|can(not|'t) (create|open|write) "
        r"|mail(er)? (program|delivery agent) (failed|error)|command (died|failed)"
        r"|mailer error",
    ),
    # --- exact wordings of common systems that would otherwise read otherwise ----------------
    Rule(
        "hard",
        "the receiver refuses this recipient address whoever sends (Postfix recipient access,"
        " Microsoft 365 directory-based edge blocking)",
        first=r"recipient address rejected: access denied",
    ),
    Rule(
        "hard",
        "the recipient's domain accepts no mail (null MX, RFC 7505)",
        first=r"(?<!sender )(?<!sender's )\b(host|domain) does not accept (e-?)?mail"
        r"|an mx or srv record indicated no smtp service",
    ),
    Rule(
        "hard",
        "the recipient's domain cannot be routed (cPanel's words for a failed lookup)",
        first=r"the account or domain may not exist, they may be blacklisted, or missing the"
        r" proper dns entries",
    ),
    Rule(
        "hard",
        "no such Yahoo account (Yahoo refuses unknown users at DATA)",
        first=r"this user doesn'?t have an? [\w.-]+ account",
    ),
    # --- policy wording: refusals of the sender or the content --------------------------------
    Rule(
        "policy",
        "the receiver blocks the sender's IP address or domain (blocklist/RBL)",
        text=r"\b(rbl|dnsbl|spamhaus|spamcop|barracuda|sorbs|blacklist|black list|blocklist"
        r"|block list|denylist|banned sending ip|blocked using|cyren|uceprotect"
        r"|senderscore|abuseat|listed (at|on|by) )",
    ),
    Rule(
        "policy",
        "the receiver judged the sender's reputation or volume",
        text=r"reputation|too many (connections|messages|recipients|emails|mails|sessions)"
        r"|rate limit|ratelimit|rate-limit|throttl|sending rate|unusual rate"
        r"|exceeded the (maximum )?number of|connection (count|limit)|high volume"
        r"|temporarily deferred due|excessive|speeding",
    ),
    Rule(
        "policy",
        "SPF, DKIM or DMARC authentication failed for the sender",
        text=r"\b(spf|dkim|dmarc)\b|sender policy framework|domainkeys|not authenticated"
        r"|authentication (required|failed|failure)|unauthenticated"
        r"|must (be )?authenticate|sender verify failed|sender verification",
    ),
    Rule(
        "policy",
        "the receiver refused the content as spam, a virus or forbidden content",
        text=r"\bspam|\bjunk|bulk mail|unsolicited|\bvirus|malware|infected|\bphish|\bscam\b"
        r"|message content|content (rejected|filter|policy)|forbidden content|suspicious"
        r"|message (was )?(rejected|refused) (as|because|due)|filtered|\bfilter"
        r"|not accepted for policy|attachment.{0,40}(not allowed|rejected|prohibited"
        r"|blocked)|mime (error|violation)|invalid header|header (error|violation)",
    ),
    Rule(
        "policy",
        "the receiver or its rules refused the sender (blocked, denied, not permitted)",
        text=r"\bblock|denied|\bdeny|not permitted|not allowed|prohibited|refused|policy"
        r"|forbidden|not authori[sz]ed|unauthori[sz]ed|restricted|security"
        r"|administrative prohibition|relay(ing)? (access )?(denied|not permitted|not allowed)"
        r"|relaying|not (a )?trusted|(sender|from) address.{0,40}reject"
        r"|reverse (dns|lookup)|\bptr\b|rdns|helo|ehlo|greylist|graylist"
        r"|\btls\b|starttls|encryption required|sender domain|domain of sender"
        r"|envelope sender|bare (lf|line feed)|syntax error|command unrecognized"
        r"|improper use of smtp|out of sequence|bad sequence|line too long"
        r"|not (compliant with )?rfc|rfc ?5322|rfc ?2822|rfc ?822 |malformed",
    ),
    # --- soft wording: the mailbox exists but not now ------------------------------------------
    Rule(
        "soft",
        "the mailbox is full or over its quota",
        text=r"mailbox (is )?full|over ?quota|quota (exceeded|exceed)|exceed(s|ed)? (the )?"
        r"(storage|quota|mailbox)|insufficient (storage|disk|system storage)|disk (is )?full"
        r"|mailbox size limit|storage (allocation|space)|full mailbox|mail ?box (has )?"
        r"exceeded|user has exhausted|account is full|inbox is full|out of (storage|space)",
        lives=True,
    ),
    Rule(
        "soft",
        "the message is too large for the receiver",
        text=r"too (big|large)|size (limit|exceed)|message size|exceeds (the )?(maximum )?"
        r"(allowed )?(message )?size|message length exceeds",
        lives=True,
    ),
    Rule(
        "soft",
        "the account is suspended or inactive (it may come back)",
        text=r"suspend|inactive|account (has been |is )?(disabled|locked|frozen|blocked)"
        r"|mailbox (is )?(disabled|inactive|locked)|not (active|activated)|deactivated"
        r"|blocked due to inactivity|temporarily disabled|on hold",
    ),
    Rule(
        "soft",
        "the receiver reports a temporary failure",
        text=r"temporar|try (again )?later|(?<!and )try again\b",
        lives=True,
    ),
    # --- hard wording: the address is dead -----------------------------------------------------
    Rule(
        "hard",
        "the address has moved or its owner left",
        text=r"has moved|moved to|no longer (with|at|employed|available|valid|in use|active)"
        r"|no longer exists|address (has )?changed|user has moved|left the company"
        r"|forwarding address",
    ),
    Rule(
        "hard",
        "the domain does not exist or accepts no mail (host unknown, null MX)",
        text=r"host (or domain name )?(not found|unknown)|unknown host|domain (not found"
        r"|does not exist|doesn'?t exist|unknown|is not (valid|registered))"
        r"|no such (host|domain)|unrouteable (mail )?domain|name or service not known"
        r"|nxdomain|no (mx|mail exchanger|valid mx|a record)|null mx|mx .{0,20}(not found"
        r"|lookup failed)|domain name not found|domain .{0,40}does not accept mail"
        r"|does not accept (e-?)?mail|accepts no mail|not accepting (any )?mail"
        r"|name server.{0,60}(not found|host not found)|host name lookup failure"
        r"|bad destination system|unknown domain|illegal host/domain|invalid domain"
        r"|mx records point to non-?existent hosts|domain (is )?not reachable"
        r"|not accepting network messages"
        r"|(find|found) (a |an |any )?(mail exchanger|mx|ip address)",
    ),
    Rule(
        "hard",
        "the receiver knows no such user or mailbox",
        text=r"no such (user|mailbox|recipient|address|account|person|local user)"
        r"|user(name)? (unknown|not found|doesn'?t exist|does not exist)"
        r"|unknown (user|recipient|mailbox|address|local ?part|alias|account|email)"
        r"|(recipient|mailbox|address|account|email account|user|addressee)"
        r"( address)? (is )?(unknown|not found|not exist|does not exist|doesn'?t exist"
        r"|not valid|invalid|nonexistent|non-existent)"
        r"|invalid (recipient|mailbox|address|user|account)|not a valid (mailbox|user"
        r"|recipient|address)|mailbox not found|mailbox unavailable|recipientnotfound|recipnotfound"
        r"|does not exist|doesn'?t exist|not listed in|no mailbox|unknown or illegal alias"
        r"|user not local|not our customer|account (has been )?(removed|deleted|closed"
        r"|expired|terminated)|no longer exists|bad destination mailbox|invalid address"
        r"|recipient not found|undeliverable address|unrouteable address"
        r"|no valid recipients|mailbox (does not|doesn't) exist|user invalid"
        r"|doesn'?t have a .{0,30}account|there is no one here|addressee unknown"
        r"|recipient address rejected: (user unknown|undeliverable)"
        r"|recipient address rejected\.?\s*($|\(in reply to rcpt)"
        r"|存在しません|見つかりません|宛先不明|ディレクトリ.{0,12}ありません",
    ),
    # --- soft wording that only counts when nothing above says more ---------------------------
    Rule(
        "soft",
        "delivery timed out or was retried until it expired",
        text=r"retry (time|timeout)|time(d)? ?out|timeout|expired|could not be delivered for"
        r"|has not been delivered|delayed|deferred|will (continue to )?retry"
        r"|not yet been delivered|retry limit|giving up after|too long in (the )?queue"
        r"|still undeliverable",
    ),
    Rule(
        "soft",
        "a network or system failure at the receiver",
        text=r"connection (refused|reset|lost|closed|dropped)"
        r"|unable to (connect|contact)|network (is )?unreachable|no route to host"
        r"|service (not available|unavailable)|resources|system (error|failure)"
        r"|local (error|problem)|internal error|server error|lost connection"
        r"|remote protocol error|mail system.{0,20}(problem|error)|unrouteable|routing",
    ),
    # --- status codes of RFC 3463 --------------------------------------------------------------
    Rule("hard", "bad destination mailbox address (5.1.1: no such user)", status="5.1.1"),
    Rule("hard", "bad destination system address (5.1.2: no such domain)", status="5.1.2"),
    Rule("hard", "bad destination mailbox address syntax (5.1.3)", status="5.1.3"),
    Rule("hard", "destination mailbox has moved, no forwarding address (5.1.6)", status="5.1.6"),
    Rule(
        "hard", "recipient not found (5.1.10: Microsoft, or null MX of RFC 7505)", status="5.1.10"
    ),
    Rule(
        "policy",
        "bad sender's mailbox address (5.1.7: sender side)",
        status="5.1.7",
    ),
    Rule("policy", "bad sender's system address (5.1.8: sender side)", status="5.1.8"),
    Rule("soft", "an address problem that is not a dead recipient (5.1.x)", status="5.1"),
    Rule("soft", "the mailbox is disabled and not accepting messages (5.2.1)", status="5.2.1"),
    Rule("soft", "the mailbox is full (5.2.2)", status="5.2.2"),
    Rule("soft", "the message is larger than the mailbox accepts (5.2.3)", status="5.2.3"),
    Rule("soft", "a mailbox problem (5.2.x)", status="5.2"),
    Rule("soft", "the message is larger than the system accepts (5.3.4)", status="5.3.4"),
    Rule("soft", "the receiving mail system failed (5.3.x)", status="5.3"),
    Rule("soft", "delivery time expired (5.4.7)", status="5.4.7"),
    Rule("hard", "unable to route: the domain has no mail server (5.4.4)", status="5.4.4"),
    Rule("soft", "a network or routing failure (5.4.x)", status="5.4"),
    Rule("policy", "an SMTP protocol error between the servers (5.5.x)", status="5.5"),
    Rule("policy", "the receiver refused the message's content or format (5.6.x)", status="5.6"),
    Rule("policy", "a security or policy refusal (5.7.x)", status="5.7"),
    Rule("soft", "a temporary failure (4.x.x)", status="4"),
)

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_ADDRESS = re.compile(r"[^\s<>()\[\]'\":;,@]{1,64}@[^\s<>()\[\]'\":;,@]{1,255}")
_BLOCKLIST = re.compile(r"spamhaus|spamcop|sorbs|barracuda|uceprotect|abuseat|dnsbl|rbl")
_URL = re.compile(r"\b(?:https?|ftp)://[^\s<>\"')\]]+", re.IGNORECASE)
_HOST = re.compile(r"\b[a-z0-9-]{1,63}(\.[a-z0-9-]{1,63}){0,8}\.[a-z]{2,24}\b")


def enhanced_status(text: str, failures_only: bool = False) -> str:
    """The first RFC 3463 status code in `text` (of a failure only: 4.x.x or 5.x.x), or ""."""
    for found in _STATUS.finditer(text):
        if not failures_only or found.group(1) != "2":
            return ".".join(found.groups())
    return ""


def best_status(status: str, diagnostic: str) -> str:
    """The receiver's own failure code when its reply gives a specific one of the same class
    (a reply's "552 5.2.2 ..." over the reporting MTA's "5.1.1" or "5.0.0"), else `status`."""
    said = enhanced_status(diagnostic, failures_only=True)
    if not said or (status and (said[0] != status[0] or said.endswith(".0"))):
        return status
    return said


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _scrub(text: str) -> str:
    """`text` with links, addresses and host names (but those of blocklists) blanked,
    whitespace collapsed."""
    links = _URL.sub(lambda m: m[0] if _BLOCKLIST.search(m[0]) else "link", text)
    hosts = _HOST.sub(lambda m: m[0] if _BLOCKLIST.search(m[0]) else "host", links)
    return " ".join(_ADDRESS.sub("address", hosts).split())


def _by_text(text: str) -> Rule | None:
    words = _scrub(text)
    return next((r for r in RULES if r.text and _compiled(r.text).search(words)), None)


def _by_session(text: str) -> Rule | None:
    return next((r for r in RULES if r.session and _compiled(r.session).search(text)), None)


def _by_first(text: str) -> Rule | None:
    words = _scrub(text)
    return next((r for r in RULES if r.first and _compiled(r.first).search(words)), None)


def _by_status(status: str) -> Rule | None:
    candidates = [
        r for r in RULES if r.status and (status == r.status or status.startswith(r.status + "."))
    ]
    return max(candidates, key=lambda r: len(r.status), default=None)


def judge(status: str, diagnostic: str, transient: bool, context: str = "") -> tuple[Klass, str]:
    """The class of one failed recipient and why, from its status code, its diagnostic and the
    bounce's words about it (`context`, read where the diagnostic says nothing). In order:

    1. the exact wording of a common system (`first`);
    2. the SMTP stage of a permanent refusal (`session`), unless a specific hard code says more;
    3. policy wording, then a specific policy status code (x.7.x and the like);
    4. a transient failure (delayed, 4xx not given up on as an address problem): soft, never hard;
    5. hard or soft wording where the code is vague (x.y.0), absent or soft, and wording of a
       mailbox that exists (`lives`: full, too big, temporary) over any code; else the code;
    6. nothing recognised: soft, never taken for a dead address.
    """
    code = _by_status(status) if status else None
    vague = not status or status.endswith(".0")
    vendor = _by_first(diagnostic) or _by_first(context)
    if vendor is not None and not (transient and vendor.klass == "hard"):
        return vendor.klass, vendor.reason
    session = None if transient else _by_session(context + "\n" + diagnostic)
    if session is not None and (
        session.klass == "soft" or vague or code is None or code.klass != "hard"
    ):
        return session.klass, session.reason
    words = _by_text(diagnostic) if diagnostic else None
    if words is None and context and (vague or code is None):
        words = _by_text(context)
    if words is not None and words.klass == "policy":
        return words.klass, words.reason
    if code is not None and code.klass == "policy" and not (vague and words is not None):
        return code.klass, code.reason
    if transient:
        return "soft", words.reason if words is not None else "a temporary failure (4.x.x)"
    if words is not None and (vague or code is None or code.klass == "soft" or words.lives):
        return words.klass, words.reason
    if code is not None:
        return code.klass, code.reason
    return "soft", "a permanent failure of unrecognised cause (not taken as a dead address)"
