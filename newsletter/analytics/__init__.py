"""Analytics: how an issue did, without following any reader.

`links` rewrites an issue's links into signed redirects that name the issue and the link,
never the reader; `bots` tells scanners from people by the rules in `data/bot_rules.toml`;
`clicks` records and counts clicks (its table has no subscriber column); `figures` gathers an
issue's report from the ledger, the status history and the clicks; `charts` and `page` draw it as a
self-contained page with inline SVG. May import `newsletter.config`, `errors`, `validation`,
`compose.templates` (to render the page) and the standard library; never `deliver`, `web`,
`publish` or `cli`.
"""
