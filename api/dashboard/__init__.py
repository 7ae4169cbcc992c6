"""The dashboard: server-rendered pages under ``/ui`` over the same API, signed in with an API key.

The pages are Jinja2 templates; small vanilla JS modules (``static/``) call the JSON API
with the session cookie (:mod:`api.dashboard.session`), so every number they show comes
from the same routes, the same owner filter and the same errors as a CI client's.
"""
