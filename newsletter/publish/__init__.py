"""Publish: what the tool writes to disk for people to open: build folders, the web archive,
and the scaffold of a new issue.

`writer` owns output folders (staged, then moved into place), `generation` the archive's (made
in the site it last replaced); `archive` renders the public pages and the Atom feed;
`scaffold` writes a new issue. May import `compose`, `newsletter.config`, `errors`. Never
`deliver`, `web` or `cli`.
"""
