"""Text in a PDF core font (Windows-1252): what it can show, how wide it is, and how it wraps.

:func:`pdf_text` reduces any text to what the core fonts have; :class:`FontMetrics` measures strings from a
font's per-character widths, vectorised; :func:`wrap_text` and :func:`clip_text` fit a cell. Widths are in
1/1000 of the type size, as fpdf2 gives them.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Mapping

import numpy as np

__all__ = ["MAX_LINES", "FontMetrics", "clip_text", "pdf_text", "wrap_text"]

MAX_LINES = 12  # a cell wraps onto at most this many lines (a zone id of ~150 characters), then is cut


class FontMetrics:
    """String widths in a core font [1/1000 of the type size], from its per-character widths."""

    _SIZE = 0x2123  # code points up to "™", the highest in Windows-1252; one slot more for any other
    _cache: dict[str, FontMetrics] = {}

    def __init__(self, char_widths: Mapping[str, int]) -> None:
        """From fpdf2's core font widths, keyed by the Windows-1252 byte as a Latin-1 character."""
        self.table = np.zeros(self._SIZE + 1, dtype=np.int64)  # code point 0 (numpy's padding): width 0
        for byte in range(32, 256):
            if byte not in (0x81, 0x8D, 0x8F, 0x90, 0x9D):  # not in Windows-1252
                self.table[ord(bytes([byte]).decode("cp1252"))] = char_widths[chr(byte)]
        self.table[-1] = self.other = char_widths["?"]
        self.char = {chr(code): width for code, width in enumerate(self.table.tolist()) if width}
        self._memo: dict[str, int] = {}

    @classmethod
    def of(cls, font: str, char_widths: Mapping[str, int]) -> FontMetrics:
        if font not in cls._cache:
            cls._cache[font] = cls(char_widths)
        return cls._cache[font]

    def width(self, text: str) -> int:
        """Width of ``text`` [1/1000 of the type size]; memoised: zone ids and dates repeat on every page."""
        found = self._memo.get(text)
        if found is None:
            char, other = self.char, self.other
            found = self._memo[text] = sum(char.get(c, other) for c in text)
        return found

    def widths(self, texts: list[str]) -> np.ndarray:
        """The widths of many strings at once: their code points looked up in the table and summed."""
        if not texts:
            return np.zeros(0, dtype=np.int64)
        codes = np.array(texts, dtype=np.str_).view(np.uint32).reshape(len(texts), -1)
        return self.table[np.minimum(codes, self._SIZE)].sum(axis=1)


@functools.lru_cache(maxsize=1 << 16)
def wrap_text(text: str, room: float, metrics: FontMetrics) -> tuple[str, ...]:
    """``text`` in lines no wider than ``room`` [1/1000 of the type size]: broken at spaces, and inside a
    word only when the word alone is too wide (as CSS ``overflow-wrap: anywhere``)."""
    if metrics.width(text) <= room:
        return (text,)
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if metrics.width(candidate) <= room:
            current = candidate
            continue
        if current:
            lines.append(current)
        while metrics.width(word) > room:
            cut = _fitting(word, room, metrics)
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    lines.append(current)
    if len(lines) > MAX_LINES:
        lines = lines[: MAX_LINES - 1] + [clip_text(" ".join(lines[MAX_LINES - 1 :]), room, metrics)]
    return tuple(lines)


def _fitting(word: str, room: float, metrics: FontMetrics) -> int:
    """How many leading characters of ``word`` fit in ``room`` (at least one)."""
    width = 0
    for count, char in enumerate(word):
        width += metrics.width(char)
        if width > room:
            return max(count, 1)
    return len(word)


def clip_text(text: str, room: float, metrics: FontMetrics) -> str:
    """``text``, cut with an ellipsis when wider than ``room``."""
    if metrics.width(text) <= room:
        return text
    return text[: _fitting(text, room - metrics.width("…"), metrics)].rstrip() + "…"


_PDF_FALLBACK = str.maketrans({"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Ħ": "H", "ħ": "h", "ı": "i"})


def pdf_text(text: str) -> str:
    """Text the PDF core fonts (Windows-1252) can show: accents kept, other letters reduced to ASCII."""
    try:
        text.encode("cp1252")
        return text
    except UnicodeEncodeError:
        pass
    out = []
    for char in text.translate(_PDF_FALLBACK):
        try:
            char.encode("cp1252")
            out.append(char)
        except UnicodeEncodeError:
            base = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode("ascii")
            out.append(base or "?")
    return "".join(out)
