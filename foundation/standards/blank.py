"""What counts as blank in a value a source system sent: the one rule the adapters, the quality rules and the
batch checks share (a padded CHAR column, a full-width space typed in a form, a zero-width character pasted
from a web page all mean "nothing was entered")."""

from __future__ import annotations

import unicodedata
from typing import Any

# Invisible format characters: soft hyphen, Mongolian vowel separator, zero-width space / non-joiner / joiner,
# direction marks and embeddings, word joiner and invisible operators, isolates, the byte-order mark.
_INVISIBLE = "\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e" + (
    "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff"
)
# What a blank value may consist of: every character str.isspace() knows (ASCII and no-break spaces, the
# full-width 　 U+3000 …), control characters, and the invisible ones.
BLANK_CHARACTERS = "".join(
    sorted({ch for ch in map(chr, range(0x3001)) if ch.isspace() or unicodedata.category(ch) == "Cc"} | set(_INVISIBLE))
)


def is_blank(value: Any) -> bool:
    """Missing for completeness: None, a blank string (see above), an empty list."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip(BLANK_CHARACTERS)
    if isinstance(value, (list, dict)):
        return not value
    return False
