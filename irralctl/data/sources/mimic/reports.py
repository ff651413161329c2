"""Sections of a MIMIC-CXR free-text report: findings, impression, comparison, indication.

A MIMIC-CXR report (`files/pXX/pSUBJECT/sSTUDY.txt`) is plain text: an optional preliminary
("WET READ: ...") part, a centred "FINAL REPORT" line, then upper-case headings followed by a
colon (EXAMINATION, INDICATION, TECHNIQUE, COMPARISON, FINDINGS, IMPRESSION, NOTIFICATION, ...),
with the text either on the heading's line or on the lines below it. Names, dates and times are
replaced by `___`. Reports vary: some have FINDINGS and IMPRESSION, some one combined
"FINDINGS AND IMPRESSION", some an IMPRESSION only, some no heading at all.

`parse_report` finds the headings, maps their many spellings onto four sections and also keeps
the report's last paragraph, the fallback that MIT-LCP's reference section parser (mimic-cxr,
`txt/section_parser.py`) uses for reports without the wanted headings. The rules are ours:

* text before "FINAL REPORT" (a wet read) is ignored when that line is present;
* a heading is a run of upper-case words ending in ':' at the start of a line, or one of the
  known section names ending in ':' anywhere in a line ("... no effusion. IMPRESSION: ...");
* a section ends at the next section heading: one of the four kept (in their many spellings) or
  one that starts another part of the report (EXAMINATION, TECHNIQUE, NOTIFICATION,
  RECOMMENDATION(S), ADDENDUM, ...); any other upper-case label (LUNGS:, HEART:, ET TUBE:, the
  sub-headings of structured findings) is text of the section it stands in;
* "FINDINGS AND IMPRESSION" fills both findings and impression with the same text;
* wrapped lines are joined and whitespace folded; the `___` marks are kept (cleaners decide).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SECTION_NAMES = ("findings", "impression", "comparison", "indication")

_FINAL_REPORT = re.compile(r"^[ \t]*FINAL REPORT[ \t]*$", re.MULTILINE)
# A heading at the start of a line: upper-case words (with the punctuation headings use) then ':'.
_LINE_HEADING = re.compile(r"^[ \t]*([A-Z][A-Z0-9 /&(),'-]*?[A-Z)])[ \t]*:", re.MULTILINE)
# Known headings anywhere in a line, after the start of the text or a whitespace.
_INLINE_HEADING = re.compile(
    r"(?<!\S)(FINDINGS AND IMPRESSIONS?|FINDINGS/IMPRESSIONS?|FINDINGS|IMPRESSIONS?|CONCLUSIONS?|"
    r"COMPARISONS?|INDICATIONS?|CLINICAL HISTORY|HISTORY|TECHNIQUE|EXAMINATION|NOTIFICATION|"
    r"RECOMMENDATIONS?(?:\(S\))?)[ \t]*:"
)
_MAX_HEADING_WORDS = 6
# Headings that open a part of the report we do not keep, so they end the section before them.
_OTHER_PARTS = ("EXAM", "TECHNIQUE", "PROCEDURE", "NOTIFICATION", "RECOMMENDATION", "ADDENDUM", "WET READ",
                "TYPE OF EXAM", "STUDY", "DATE", "ATTENDING", "PROVIDER", "DICTATED", "SIGNED")


@dataclass(frozen=True)
class ReportSections:
    findings: str = ""
    impression: str = ""
    comparison: str = ""
    indication: str = ""
    last_paragraph: str = ""
    headings: tuple[str, ...] = field(default=())  # the section headings found, in order, as written

    def as_dict(self) -> dict[str, str]:
        return {"comparison": self.comparison, "indication": self.indication, "findings": self.findings,
                "impression": self.impression, "last_paragraph": self.last_paragraph}


def canonical_section(heading: str) -> tuple[str, ...]:
    """The sections a heading's text belongs to: () for headings we do not keep."""
    h = " ".join(heading.upper().replace("(S)", "S").split())
    if h.startswith("FINDING") and "IMPRESSION" in h:
        return ("findings", "impression")
    if h.startswith("FINDING"):
        return ("findings",)
    if h.startswith(("IMPRESSION", "CONCLUSION")):
        return ("impression",)
    if h.startswith("COMPARISON"):
        return ("comparison",)
    if "INDICATION" in h or "HISTORY" in h or h.startswith(("REASON FOR", "CLINICAL INFORMATION")):
        return ("indication",)
    return ()


def is_section_heading(heading: str) -> bool:
    """True for headings that start a new part of the report (kept or not); False for labels
    inside a section, such as the LUNGS: / HEART: of structured findings."""
    h = " ".join(heading.upper().split())
    return bool(canonical_section(h)) or h.startswith(_OTHER_PARTS)


def _fold(text: str) -> str:
    return " ".join(text.split())


def _body(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    m = _FINAL_REPORT.search(text)
    return text[m.end():] if m else text


def _headings(body: str) -> list[tuple[int, int, str]]:
    """(start, end, heading) for every heading, in order, without overlaps."""
    found: dict[int, tuple[int, int, str]] = {}
    for m in _LINE_HEADING.finditer(body):
        name = m.group(1)
        if len(name.split()) <= _MAX_HEADING_WORDS and sum(c.isalpha() for c in name) >= 2:
            found[m.start(1)] = (m.start(1), m.end(), name)
    for m in _INLINE_HEADING.finditer(body):
        found.setdefault(m.start(1), (m.start(1), m.end(), m.group(1)))
    out, last_end = [], -1
    for start in sorted(found):
        if start >= last_end:  # an inline match inside a longer line heading is the same heading
            out.append(found[start])
            last_end = found[start][1]
    return out


def _last_paragraph(body: str) -> str:
    paragraphs = [p for p in re.split(r"\n[ \t]*\n", body) if p.strip()]
    if not paragraphs:
        return ""
    last = paragraphs[-1]
    heads = [h for h in _headings(last) if is_section_heading(h[2])]
    # Drop a heading that opens the paragraph ("IMPRESSION: No acute process." -> the sentence).
    if heads and not last[: heads[0][0]].strip():
        last = last[heads[0][1]:]
    return _fold(last)


def parse_report(text: str) -> ReportSections:
    """Split one MIMIC-CXR report into sections (see the module docstring for the rules)."""
    body = _body(text)
    heads = [h for h in _headings(body) if is_section_heading(h[2])]
    parts: dict[str, list[str]] = {name: [] for name in SECTION_NAMES}
    combined: list[str] = []
    for k, (_, end, name) in enumerate(heads):
        stop = heads[k + 1][0] if k + 1 < len(heads) else len(body)
        content = _fold(body[end:stop])
        if not content:
            continue
        sections = canonical_section(name)
        if len(sections) > 1:
            combined.append(content)
        for section in sections:
            if content not in parts[section]:
                parts[section].append(content)
    # A combined section stands in for the impression only where there is no separate one, so
    # findings+impression never repeats it.
    if combined and any(t not in combined for t in parts["impression"]):
        parts["impression"] = [t for t in parts["impression"] if t not in combined]
    return ReportSections(
        **{name: " ".join(texts) for name, texts in parts.items()},
        last_paragraph=_last_paragraph(body),
        headings=tuple(name for _, _, name in heads),
    )


SECTION_CHOICES = ("findings", "findings+impression", "impression")


def target_text(sections: dict[str, str], which: str) -> str:
    """The target text for `--sections`: findings (R2Gen), findings+impression, or impression.

    A combined "FINDINGS AND IMPRESSION" section is in both fields; it is used once.
    """
    if which == "findings":
        return sections.get("findings", "")
    if which == "impression":
        return sections.get("impression", "")
    if which == "findings+impression":
        f, i = sections.get("findings", ""), sections.get("impression", "")
        return f if f == i else " ".join(t for t in (f, i) if t)
    raise ValueError(f"unknown sections {which!r}")
