"""Keep secrets out of what nasplay writes and prints: passwords in URLs, keys and tokens in configs."""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
# Keys whose values are secrets wherever they appear in a config.
SECRET_KEY = re.compile(r"(pass(word|wd)?|secret|token|api_?key|credential)", re.IGNORECASE)
# scheme://user:password@host -> scheme://user:***@host
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]+)(?P<at>@)")
# ...?password=x&... in a URL's query
_QUERY_SECRET = re.compile(r"(?P<key>[?&](password|passwd|secret|token|api_?key)=)(?P<val>[^&\s]+)", re.IGNORECASE)


def mask_text(text: str) -> str:
    """``text`` with the passwords of URLs in it replaced by ``***``."""
    text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK + m["at"], text)
    return _QUERY_SECRET.sub(lambda m: m["key"] + MASK, text)


def mask(obj: Any) -> Any:
    """A copy of a plain config (dicts, lists, scalars) with secret-named keys and URL passwords masked."""
    if isinstance(obj, dict):
        return {k: (MASK if SECRET_KEY.search(str(k)) and v not in (None, "") else mask(v)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [mask(v) for v in obj]
    if isinstance(obj, str):
        return mask_text(obj)
    return obj
