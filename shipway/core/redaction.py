"""Credentials out of everything a person or a log reads.

Store URIs carry passwords (``postgresql://user:pw@db/x``, an MLflow server behind basic
auth), Redis connection strings carry ``password=``, clients send bearer tokens. Any of
them can end up in a banner, a log line or an error message; :func:`redact` is the one
mask every layer applies before showing such text, and :class:`Redactor` adds the values
of secret-looking environment variables (``*_TOKEN``, ``*_PASSWORD``...) for the log
files, where a library may print them in forms no pattern knows.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

MASK = "***"

SECRET_NAME = re.compile(r"(?i)(password|passwd|secret|token|api_?key|access_?key|credential)")
"""Environment variable names whose values are secrets."""
_NOT_A_SECRET = re.compile(r"(?i)_(file|path|dir|required)$")
"""...unless the name says the value only points at one (a token file's path)."""

_PATTERNS = (
    # scheme://user:password@host -> scheme://user:***@host (an empty user too, as in
    # redis://:pw@host; up to the authority's last '@', so an unencoded '@' in the
    # password does not leave its tail behind)
    (re.compile(r"(\b[a-zA-Z][\w+.-]*://[^/\s:@]*:)[^/\s]*@"), rf"\1{MASK}@"),
    # a token as the whole userinfo, as git and some registries take it
    # (https://ghp_abc123...@host): 20+ token characters with a letter and a digit; a
    # plain username (postgresql://shipway@db) stays readable
    (
        re.compile(r"(\b[a-zA-Z][\w+.-]*://)(?=[\w.~-]*\d)(?=[\w.~-]*[a-zA-Z])[\w.~-]{20,}@"),
        rf"\1{MASK}@",
    ),
    # Authorization: Bearer xyz
    (re.compile(r"(?i)(\b(?:bearer|basic)\s+)[\w.~+/=-]{6,}"), rf"\1{MASK}"),
    # password=..., "api_key": "...", token: ...
    (
        re.compile(
            r"(?i)(\b[\w-]*(?:password|passwd|secret|token|api_?key|access_?key)[\w-]*"
            r"[\"']?\s*[=:]\s*[\"']?)[^\s,;\"'&}]+"
        ),
        rf"\1{MASK}",
    ),
)


def redact(text: str) -> str:
    """``text`` with URL passwords, bearer/basic credentials and ``password=``-style values
    replaced by ``***``; everything else (host, port, database, paths) stays readable.

    >>> redact("registry http://admin:S3cret@mlflow:5000")
    'registry http://admin:***@mlflow:5000'
    """
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class Redactor:
    """:func:`redact`, plus known secret values wherever they appear (e.g. inside a store
    URI that a pipeline prints among its parameters, in a form no pattern recognises)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # short values would mask ordinary words; longest first so none is left half-masked
        self.secrets = sorted({s for s in secrets if len(s) >= 8}, key=len, reverse=True)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Redactor:
        """The values of secret-looking environment variables (``SHIPWAY_TRIGGER_TOKEN``,
        ``*_PASSWORD``; not ``*_FILE``, which is where a secret is, not the secret)."""
        env = dict(os.environ) if env is None else env
        return cls(
            v for k, v in env.items() if SECRET_NAME.search(k) and not _NOT_A_SECRET.search(k)
        )

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return redact(text)
