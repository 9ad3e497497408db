"""Where each benchmark writes its table in docs/benchmarks.md (``--write-docs``)."""

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def write_between_markers(start: str, end: str, table: str) -> None:
    """Put ``table`` between the ``start`` and ``end`` markers of docs/benchmarks.md, in
    place of what stood there; at the end of the file when the markers are not there yet."""
    docs = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    block = f"{start}\n{table}{end}"
    if start in docs and end in docs:
        docs = re.sub(f"{re.escape(start)}.*?{re.escape(end)}", lambda _: block, docs, flags=re.S)
    else:
        docs += f"\n{block}\n"
    DOCS.write_text(docs)
    print(f"Wrote the table into {DOCS.relative_to(DOCS.parent.parent)}")
