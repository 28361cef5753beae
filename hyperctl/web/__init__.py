"""The dashboard: web pages of the batches of a data dir, served by a batch's daemon (its own batch
live, with actions) and by `hyperctl ui` (every batch, read-only).

login.py    one-time login links, the session cookie they are swapped for, CSRF tokens
site.py     what a server of pages knows: the data dir, its logins, its own batch (a daemon's)
pagebase.py the handlers' base: Host check, security headers, the session, templates
data.py     what the pages show, read from the batches' stores
pages.py    the pages and the JSON they fetch; events.py the live updates (Server-Sent Events)
routes.py   the URLs, mounted by the daemon's app and by `hyperctl ui`
jobpages.py a job's page and the curves (jobdata.py, curvedata.py: what they show); logstream.py
            a job's log, live
"""
