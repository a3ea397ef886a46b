"""The DNS questions the pure checks ask, as a protocol; `net.DnsLookup` answers them."""

from __future__ import annotations

from typing import Protocol


class LookupFailed(Exception):
    """The DNS gave no answer (time-out, server failure): neither yes nor no."""


class Lookup(Protocol):
    """DNS answers. A name that does not exist, or has no record of the type, gives []."""

    def txt(self, name: str) -> list[str]:
        """The TXT records at `name`, each one's strings joined."""

    def addresses(self, name: str) -> list[str]:
        """The IPv4 and IPv6 addresses of `name` (A and AAAA)."""

    def mx(self, name: str) -> list[str]:
        """The mail exchangers of `name`, most preferred first ('.' for a null MX)."""
