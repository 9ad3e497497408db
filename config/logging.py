"""Logging helpers. Imported by settings, so nothing here may import models."""

import logging
import re

# `secure=<token>` in a request line or URL, up to the next separator.
_SECURE_RE = re.compile(r"(secure=)([^&\s\"']{4})[^&\s\"']*", re.IGNORECASE)


def mask_secure(text: str) -> str:
    """Keep the first 4 characters of every ``secure`` value, as the postback log does."""
    return _SECURE_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}••••••••", text)


class MaskSecureFilter(logging.Filter):
    """Masks postback tokens in any log record (runserver's request lines, error reports)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "secure=" in message.lower():
            record.msg = mask_secure(message)
            record.args = ()
        return True
