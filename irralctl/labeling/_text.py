"""Report normalisation, sentence splitting and tokenisation.

`clean` reproduces the CheXpert labeler's loader step for step (lower case, "and/or" -> "or",
"a/b" -> "a or b", ".." -> ".", a space after every period and comma, whitespace collapsed,
empty sentences dropped), so that phrase matching sees exactly the text the original matched.
The original then split sentences with NLTK's Punkt model; after cleaning every period is
followed by a space, so splitting after ". ", "? " and "! " gives the same sentences on
radiology text without shipping a trained splitter (the rare difference, e.g. "4. 5 cm" after the
original's own period spacing, does not change any phrase match).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_AND_OR = re.compile(r"and/or")
_WORD_SLASH = re.compile(r"(?<=[a-zA-Z])/(?=[a-zA-Z])")
_EMPTY_SENTENCE = re.compile(r"\.\s+\.")
_TOKEN = re.compile(r"[a-z0-9_]+(?:['-][a-z0-9_]+)*|[^\sa-z0-9_]")


def clean(text: str) -> str:
    """The CheXpert loader's cleaning, in its order (the order matters: "a/b." -> "a or b. ").

    Each regular expression runs only when the text holds what it rewrites, and the spacing
    after periods and commas is two `str.replace` (the same as one `translate`, much faster):
    labelling a corpus calls this once per report."""
    text = text.lower()
    if "/" in text:
        text = _AND_OR.sub("or", text)
        text = _WORD_SLASH.sub(" or ", text)
    text = text.replace("..", ".")
    text = text.replace(".", ". ").replace(",", ", ")  # a space after every period and comma
    text = " ".join(text.split())
    # After the join every run of whitespace is one space: `\.\s+\.` can only match ". .".
    return _EMPTY_SENTENCE.sub(".", text) if ". ." in text else text


def split_sentences(cleaned: str) -> str:
    """Put each sentence of a cleaned report on its own line.

    Phrases never contain a newline, so matching over the joined text cannot cross a sentence
    boundary, and a phrase with a leading space (the original's `_mediastinum`) cannot match at
    the start of a sentence, exactly as when the original matched sentence by sentence.
    A line break replaces every space that follows ".", "?" or "!" (three `str.replace`).
    """
    return cleaned.replace(". ", ".\n").replace("? ", "?\n").replace("! ", "!\n")


@dataclass(frozen=True)
class Tokens:
    """Word and punctuation tokens of a text, with character offsets."""

    words: tuple[str, ...]
    starts: tuple[int, ...]
    ends: tuple[int, ...]


def tokenize(text: str) -> Tokens:
    words, starts, ends = [], [], []
    for m in _TOKEN.finditer(text):
        words.append(m.group())
        starts.append(m.start())
        ends.append(m.end())
    return Tokens(tuple(words), tuple(starts), tuple(ends))
