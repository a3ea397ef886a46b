"""What comes back: inbound mail read and classified, with nothing changed anywhere.

`classify.classify(raw)` tells a bounce (each failed recipient classed hard, soft or policy by
the one table in `rules`), a complaint (feedback report), an automatic reply, and a mail to the
unsubscribe address apart, with the delivery token it carries; `verp` makes and checks the
signed tokens of envelope senders; `sources` reads raw messages from Maildir, mbox and IMAP.
The package imports only the standard library, flufl.bounce, IMAPClient (in `sources`) and
newsletter.errors: the store and the CLI are wired to it from outside.
"""
