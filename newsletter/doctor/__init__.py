"""Doctor: is this newsletter set up to be delivered? DNS (SPF, DKIM, DMARC, MX), the relays'
TLS, the web endpoints and the list's volume at the big mailbox providers, each judged in one
`CheckResult` (pass, warn or fail, a one-line finding and what to do).

`spf`, `dkimkey`, `dmarc`, `volume` and `endpoints` are pure: they parse records and turn
facts into verdicts (SPF evaluation asks a `lookup.Lookup` for DNS answers). `net` is the one
module that touches the network (dnspython, smtplib, urllib), and `run` puts them together.
May import `deliver` (the DKIM signer and the subscriber store), `newsletter.config`, `errors`
and `validation`; never `compose`, `publish`, `web`, `checks` or `cli`.
"""

from newsletter.doctor.results import CheckResult, Level
from newsletter.doctor.run import run_doctor

__all__ = ["CheckResult", "Level", "run_doctor"]
