"""Bounces come back to the envelope (MAIL FROM) domain: it needs somewhere to receive them."""

from __future__ import annotations

from newsletter.doctor.results import CheckResult, failed, passed, warned

NAME = "bounce MX"


def mx_verdict(
    domain: str, configured: bool, exchangers: list[str], has_address: bool
) -> CheckResult:
    """Judge the MX of the envelope domain; `configured` when it is [sending] bounce_domain.

    Without an MX, RFC 5321 delivers to the domain's own address (`has_address`)."""
    listener = (
        "the inbound listener (or a mailbox there) must accept mail for it"
        if configured
        else "bounces land in the sender's mailbox"
    )
    if exchangers == ["."]:
        return failed(
            NAME,
            f"{domain} has a null MX: it accepts no mail, so bounces are lost",
            f"publish an MX for {domain} pointing at the host that receives bounces",
        )
    if exchangers:
        return passed(NAME, f"{domain} receives mail at {', '.join(exchangers)}; {listener}")
    if has_address:
        return warned(
            NAME,
            f"{domain} has no MX; senders fall back to its A/AAAA address",
            f"publish an MX for {domain}; {listener}",
        )
    return failed(
        NAME,
        f"{domain} has no MX and no address: bounces cannot come back",
        f"publish an MX for {domain}; {listener}",
    )
