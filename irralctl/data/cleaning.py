"""Report cleaners.

`legacy_iu_xray` and `legacy_mimic_cxr` reproduce, byte for byte, the `clean_report_iu_xray` and
`clean_report_mimic_cxr` methods of R2Gen / R2GenCMN (modules/tokenizers.py), quirks included,
so that vocabularies and scores stay comparable with published tables:

* every "1. " is deleted, wherever it stands ("grade 1. " loses its number too);
* the character class ``[.,?;*!%^&_+():-\\[\\]{}]`` contains the range ``:-[`` (":" to "["),
  so ``; < = > ? @`` and upper-case letters are removed along with the listed punctuation;
* all periods inside a sentence go, so "4.5 cm" becomes "45 cm";
* the "drop empty sentences" test compares a string with ``[]`` and is always true, so empty
  sentences are kept (a report "a. . b" gives "a .  . b ." with a blank sentence).

`default` is a normaliser for new work: lower case, whitespace folded, list enumerators removed,
sentences split on terminal punctuation (not on decimal points), and tokens that keep decimals
("4.5"), hyphenated words ("well-expanded"), vertebral levels ("t11-t12") and de-identification
marks ("xxxx", "___"). Output uses R2Gen's shape, " . " between sentences and a final " .", so
whitespace tokenisation is what the metrics expect.

Each cleaner has a version string recorded in every artefact that depends on it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

# R2Gen's sentence-level character class; written raw here, identical to the regex the original
# builds from a non-raw string (where "\[" and "\]" survive as escapes).
_LEGACY_STRIP = re.compile(r"[.,?;*!%^&_+():-\[\]{}]")


def _legacy_sentence(s: str) -> str:
    s = s.replace('"', "").replace("/", "").replace("\\", "").replace("'", "").strip().lower()
    return _LEGACY_STRIP.sub("", s)


def _legacy_join(sentences: list[str]) -> str:
    # The original filters with `sent_cleaner(sent) != []`, which never fails: keep every sentence.
    return " . ".join(_legacy_sentence(s) for s in sentences) + " ."


def _legacy_enumerators(t: str) -> str:
    t = t.replace("1. ", "")
    for k in "2345":
        t = t.replace(f". {k}. ", ". ")
    for k in "2345":
        t = t.replace(f" {k}. ", ". ")
    return t


def legacy_iu_xray(report: str) -> str:
    """R2Gen's `clean_report_iu_xray`, reproduced exactly."""
    t = report.replace("..", ".").replace("..", ".").replace("..", ".")
    t = _legacy_enumerators(t)
    return _legacy_join(t.strip().lower().split(". "))


def legacy_mimic_cxr(report: str) -> str:
    """R2Gen's `clean_report_mimic_cxr`, reproduced exactly (fixed repetition counts included)."""
    t = report.replace("\n", " ")
    for _ in range(7):
        t = t.replace("__", "_")
    for _ in range(6):
        t = t.replace("  ", " ")
    for _ in range(8):
        t = t.replace("..", ".")
    t = _legacy_enumerators(t)
    return _legacy_join(t.strip().lower().split(". "))


_ENUMERATOR = re.compile(r"(?:(?<=^)|(?<=[.:;]\s)|(?<=\n))\s*\(?\d{1,2}[.)]\s+")
_SENT_END = re.compile(r"(?<!\d)[.!?]+(?=\s|$)|(?<=\d)[.!?]+(?=\s|$)|[;\n]+")
_TOKEN = re.compile(r"_{2,}|[a-z0-9]+(?:[-./'][a-z0-9]+)*%?")


def default_clean(report: str) -> str:
    """A normaliser that keeps decimals, hyphens and sentence structure (see module docstring)."""
    t = unicodedata.normalize("NFKC", report).lower()
    t = _ENUMERATOR.sub(" ", t)
    t = re.sub(r"[ \t\r\f\v]+", " ", t)
    sentences = []
    for chunk in _SENT_END.split(t):
        tokens = _TOKEN.findall(chunk)
        if tokens:
            sentences.append(" ".join(tokens))
    if not sentences:
        return ""
    return " . ".join(sentences) + " ."


CLEANERS: dict[str, tuple[str, Callable[[str], str]]] = {
    # name: (version, function)
    "legacy-iu": ("r2gen-iu-1", legacy_iu_xray),
    "legacy-mimic": ("r2gen-mimic-1", legacy_mimic_cxr),
    "default": ("default-1", default_clean),
}


def get_cleaner(name: str, dataset: str = "iu_xray") -> tuple[str, str, Callable[[str], str]]:
    """Resolve `legacy` or `default` for a dataset; returns (resolved name, version, function)."""
    if name == "legacy":
        name = "legacy-iu" if dataset == "iu_xray" else "legacy-mimic"
    if name not in CLEANERS:
        raise ValueError(f"unknown cleaner {name!r}; choose legacy or default")
    version, fn = CLEANERS[name]
    return name, version, fn


@dataclass(frozen=True)
class ReportCleaners:
    """What a preparation cleans each report with: the chosen cleaner for `target`, and the legacy
    (R2Gen) cleaner for `legacy_target`, from which the legacy vocabulary is built."""

    clean: Callable[[str], str]
    legacy: Callable[[str], str]
    described: dict  # dataset.json's "cleaner" and "legacy_cleaner" entries: {"name", "version"} each


def report_cleaners(name: str, dataset: str) -> ReportCleaners:
    """The chosen cleaner (`legacy` or `default`) and the legacy one, resolved for `dataset`."""
    chosen, chosen_version, clean = get_cleaner(name, dataset)
    legacy, legacy_version, legacy_clean = get_cleaner("legacy", dataset)
    return ReportCleaners(clean, legacy_clean, {
        "cleaner": {"name": chosen, "version": chosen_version},
        "legacy_cleaner": {"name": legacy, "version": legacy_version},
    })
