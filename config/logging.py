"""Logging helpers: no whole postback token in any server log, one line per bad Host.

Imported by settings and by gunicorn's master process (config/gunicorn.py), so nothing here
may import models at import time: the token set is reached lazily, only once Django is set
up, and never with a query (a log call must not touch the database).
"""

import logging
import re

from gunicorn.glogging import Logger as GunicornLogger

# Parameters whose values are secrets whatever they hold (the postback's `secure`, and what
# partners and publishers call theirs), in a request line or URL, up to the next separator.
_SECRET_PARAMETER_RE = re.compile(
    r"(?<![A-Za-z0-9_])((?:secure|secret|token|key|api_key|password|signature|sig)=)"
    r"([^&\s\"'\\]{1,4})[^&\s\"'\\]*",
    re.IGNORECASE,
)


def mask_secure(text: str) -> str:
    """Keep the first 4 characters of every secret parameter's value (``secure=…`` above
    all), as the postback log does."""
    return _SECRET_PARAMETER_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}••••••••", text)


def _known_tokens_masked(text: str) -> str:
    """Every token this process knows (tracking.masking), without a query; ``text`` as it is
    before Django is set up (gunicorn's master) or before the tokens were loaded."""
    from django.apps import apps

    if not apps.ready:
        return text
    from tracking.masking import known_token_mask

    return known_token_mask()(text)


def mask_tokens(text: str) -> str:
    """``text`` with secret parameters' values and every known token masked."""
    return _known_tokens_masked(mask_secure(text))


class MaskSecureFilter(logging.Filter):
    """Masks postback tokens in any log record (runserver's and gunicorn's request lines,
    error reports): by parameter name, and by value wherever a current token appears."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_tokens(message)
        if masked != message:
            record.msg = masked
            record.args = ()
        if record.exc_info and not record.exc_text:
            # A traceback can quote a request line too: format it once, masked.
            record.exc_text = mask_tokens(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = mask_tokens(record.exc_text)
        return True


class OneLineWarning(logging.Filter):
    """A client's mistake (a Host outside ALLOWED_HOSTS) as one warning line, no traceback:
    anyone can send any number of them, and ten lines each would flood the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        record.levelno = logging.WARNING
        record.levelname = logging.getLevelName(logging.WARNING)
        return True


class MaskingGunicornLogger(GunicornLogger):
    """gunicorn's logger with its error and access logs through ``MaskSecureFilter``.

    gunicorn logs a malformed request line whole ("Invalid request from ip=…: Invalid
    HTTP request line: 'GET /postback?secure=…'"), and its access log writes every
    request's query string; neither goes through Django's logging.
    """

    def setup(self, cfg) -> None:  # noqa: ANN001 - gunicorn's Config
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            if not any(isinstance(f, MaskSecureFilter) for f in log.filters):
                log.addFilter(MaskSecureFilter())
