import pytest
from django.conf import settings

ON_POSTGRESQL = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"

#: Tests of PostgreSQL's own behaviour (real concurrency). CI runs the suite there.
requires_postgresql = pytest.mark.skipif(
    not ON_POSTGRESQL, reason="needs PostgreSQL: set DATABASE_URL=postgres://…"
)
