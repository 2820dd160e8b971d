"""Finding a phrase in an answer: case-insensitive and whitespace-normalised by default.

`find_phrase("Elvin  Mammadov", …)` matches "elvin mammadov" and "Elvin\\nMammadov": the phrase's
words are escaped and joined by `\\s+`. With `whole_words`, a match may not start or end inside a
word (a phrase edge that is a word character needs a non-word character or the text's edge beside it).
`normalise` is the looser form the leak check uses: NFKC, case-folded, every run of non-word
characters one space.
"""
from __future__ import annotations

import re
import unicodedata


def phrase_pattern(phrase: str, whole_words: bool = False, case_sensitive: bool = False) -> re.Pattern:
    """The compiled regex for `phrase`; ValueError for a phrase with no visible characters."""
    pieces = phrase.split()
    if not pieces:
        raise ValueError(f"a phrase needs at least one visible character, got {phrase!r}")
    body = r"\s+".join(re.escape(p) for p in pieces)
    if whole_words:
        if re.match(r"\w", pieces[0]):
            body = r"(?<!\w)" + body
        if re.search(r"\w$", pieces[-1]):
            body = body + r"(?!\w)"
    return re.compile(body, 0 if case_sensitive else re.IGNORECASE)


def find_phrase(text: str, phrase: str, whole_words: bool = False,
                case_sensitive: bool = False) -> list[tuple[int, int]]:
    """(start, end) of every non-overlapping occurrence of `phrase` in `text`, left to right."""
    return [(m.start(), m.end()) for m in phrase_pattern(phrase, whole_words, case_sensitive).finditer(text)]


def normalise(text: str) -> str:
    """NFKC, case-folded, non-word runs (punctuation, whitespace, '_') as one space, stripped."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"[\W_]+", " ", folded).strip()


def contains_exact(haystack: str, needle: str) -> bool:
    """`needle` occurs verbatim in `haystack`."""
    return bool(needle) and needle in haystack


def contains_normalised(haystack: str, needle: str) -> bool:
    """`normalise(needle)` occurs in `normalise(haystack)` as whole words."""
    n = normalise(needle)
    return bool(n) and f" {n} " in f" {normalise(haystack)} "
