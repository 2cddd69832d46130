"""The registry's names and addresses, without importing MLflow.

A prediction worker reads the registry's view from its service's model feed
(``services/modelfeed.py``) and never needs MLflow's client, which costs a process about
32 MB of resident memory (issue 15); it still needs the alias names, the serving-form
tag and a credential-free address for its log lines. ``shipway.core.registry`` re-exports
all of these.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

CHAMPION, CHALLENGER = "champion", "challenger"

SERVING_TAG = SERVING_ARTIFACT = "serving"
"""Model-version tag (and run artifact folder) of the version's serving form, when it has
one: what a prediction worker loads instead of the pipeline (``shipway.scoring.servingform``)."""


def address(uri: str) -> str:
    """A store URI fit for a log line: ``scheme://host:port/path``, never credentials.

    Userinfo (``user:password@``), query and fragment (tokens travel there too) are
    dropped; a path-only URI (SQLite, a file store) is returned as it is.
    """
    parts = urlsplit(uri)
    if not parts.netloc:
        return uri
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


def address_free(text: str) -> str:
    """``text`` with the userinfo of any URL in it masked."""
    return _USERINFO.sub(r"\1***@", text)


_USERINFO = re.compile(r"(\b[a-zA-Z][\w+.-]*://)[^/\s@]+@")
