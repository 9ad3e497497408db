import logging

from config.logging import MaskSecureFilter, mask_secure


def test_secure_values_are_masked_in_request_lines():
    line = '"GET /postback?transaction_id=abc&secure=Zx81longsecrettoken-_ HTTP/1.1" 200 12'

    masked = mask_secure(line)

    assert "longsecrettoken" not in masked
    assert "secure=Zx81••••••••" in masked
    assert "transaction_id=abc" in masked


def test_the_logging_filter_masks_formatted_messages():
    record = logging.LogRecord(
        "django.server", logging.INFO, __file__, 1, '"%s" %s', ("GET /?SECURE=abcdefgh", 200), None
    )

    assert MaskSecureFilter().filter(record) is True
    assert record.getMessage() == '"GET /?SECURE=abcd••••••••" 200'


def test_the_console_handler_carries_the_filter():
    handlers = logging.getLogger("django.server").handlers

    assert any(isinstance(f, MaskSecureFilter) for h in handlers for f in h.filters)
