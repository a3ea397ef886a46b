"""Deliver: the subscriber store, the delivery ledger, per-reader messages and the transports.

`db` opens and migrates the database; `subscribers` and `csvfiles` keep the list; `tokens`
signs the links that name a reader; `message` fills a built issue for one reader; `transports`
hand a message to an SMTP relay or the outbox; `ledger` records each copy's fate; `sender`
runs the workers; `campaign` is the send API that the CLI, the scheduler and the web app call.
May import: `compose` (a built issue is its input), `newsletter.config`, `errors`,
`validation`. Never `web`, `publish` or `cli`.
"""
