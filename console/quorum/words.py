"""Digests in a form officers can read aloud and compare across the room.

`digest_words` maps each byte to one of 256 words (``wordlist.txt``, our own list, line order =
byte value); `grouped_hex` prints hex in groups of four. Both are deterministic, so every
officer's screen and printout show the same words for the same plan.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

WORD_COUNT = 256


@cache
def wordlist() -> tuple[str, ...]:
    """The 256 words, index = byte value (comment lines start with '#')."""
    text = files("console.quorum").joinpath("wordlist.txt").read_text(encoding="utf-8")
    words = tuple(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )
    # A broken package must fail loudly rather than show ambiguous words.
    if len(words) != WORD_COUNT or len(set(words)) != WORD_COUNT:
        raise RuntimeError("console/quorum/wordlist.txt must hold 256 distinct words")
    return words


def digest_words(digest: bytes, count: int = 8) -> list[str]:
    """The first `count` bytes of `digest` as words (8 bits per word)."""
    if not 1 <= count <= len(digest):
        raise ValueError(f"count must be between 1 and {len(digest)}")
    words = wordlist()
    return [words[b] for b in digest[:count]]


def grouped_hex(digest: bytes) -> str:
    """Lowercase hex in groups of four characters: "7f3a 19c2 ..."."""
    text = digest.hex()
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))
