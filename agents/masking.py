"""Secrets out of what the agent prints: check-config's output, log lines, dead-letter reasons.

By name (a key called api_key, password, token or secret) and by shape (the password of a URL, a
secret-named query parameter), so that a setting added later is covered too.
"""

from __future__ import annotations

import re

MASK = "***"
SECRET_KEY = re.compile(r"(?:^|_)(?:api_key|password|passwd|token|secret)$")
# The password runs to the last @: one holding an unescaped @ is masked whole, whichever parser
# (SQLAlchemy's, httpx's) reads the URL; a path that holds an @ too is masked more than it needs.
_URL_PASSWORD = re.compile(r"^([A-Za-z][\w+.-]*://[^:/@]*:).*@")
_SECRET_PARAMETER = re.compile(r"([?&;][^=&;]*(?:api_key|password|passwd|token|secret)=)[^&;#]*", re.I)


def url_without_secrets(url: str) -> str:
    """`scheme://user:***@host/...`, and `***` for a secret-named query parameter (`?password=...`)."""
    return _SECRET_PARAMETER.sub(rf"\g<1>{MASK}", _URL_PASSWORD.sub(rf"\g<1>{MASK}@", url))
