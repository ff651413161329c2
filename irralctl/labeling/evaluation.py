"""Agreement of the labeler with the hand-labelled IU X-Ray gold set (tests/data/labeling_gold_*).

The gold files hold only report numbers, section names, character offsets and labels; the texts
come from the Open-i archive `NLMCXR_reports.tgz` (`ecgen-radiology/<n>.xml`, one
`<AbstractText Label="FINDINGS">` and one `"IMPRESSION"` per report), read here with tarfile and
ElementTree. A report's text is FINDINGS then IMPRESSION, the present ones joined by one space.
"""

from __future__ import annotations

import csv
import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from irralctl.errors import InputError
from irralctl.labeling.labeler import OBSERVATIONS, Labeler

SECTIONS = ("findings", "impression")


@dataclass(frozen=True)
class GoldItem:
    key: str                               # "1234" (a report) or "1234/findings/10-52" (a sentence)
    text: str
    labels: tuple[int | None, ...]         # 14 values in OBSERVATIONS order


def iter_iu_reports(tgz: str | Path) -> Iterator[tuple[str, dict[str, str]]]:
    """(report number, {"findings": text, "impression": text}) for every report in the archive."""
    tgz = Path(tgz)
    if not tgz.is_file():
        raise InputError("file not found", path=tgz)
    try:
        with tarfile.open(tgz, "r:*") as tar:
            for member in tar:
                name = member.name.rsplit("/", 1)[-1]
                if not member.isfile() or not name.endswith(".xml"):
                    continue
                f = tar.extractfile(member)
                try:
                    root = ET.fromstring(f.read())
                except ET.ParseError as e:
                    raise InputError(f"not valid XML ({e})", path=tgz, record=member.name) from None
                sections = {}
                for node in root.iter("AbstractText"):
                    label = (node.get("Label") or "").lower()
                    if label in SECTIONS and node.text and node.text.strip():
                        sections[label] = node.text
                yield name[: -len(".xml")], sections
    except (tarfile.TarError, OSError) as e:
        raise InputError(f"cannot read the archive ({e})", path=tgz) from None


def report_text(sections: dict[str, str]) -> str:
    return " ".join(sections[s] for s in SECTIONS if s in sections)


def _labels(row: dict, path: Path, lineno: int) -> tuple[int | None, ...]:
    out = []
    for name in OBSERVATIONS:
        cell = (row.get(name) or "").strip()
        if cell not in ("", "1", "0", "-1"):
            raise InputError(f"label must be 1, 0, -1 or empty, got {cell!r}", path=path, record=lineno, field=name)
        out.append(None if cell == "" else int(cell))
    return tuple(out)


def load_gold(path: str | Path, reports: dict[str, dict[str, str]]) -> list[GoldItem]:
    """Gold items of one CSV: sentence rows (report, section, start, end) or report rows (report)."""
    path = Path(path)
    items = []
    with open(path, encoding="utf-8", newline="") as f:
        for lineno, row in enumerate(csv.DictReader(f), start=2):
            sections = reports.get(row["report"])
            if sections is None:
                raise InputError(f"report {row['report']} is not in the archive", path=path, record=lineno)
            if "section" in row:
                start, end = int(row["start"]), int(row["end"])
                text = sections.get(row["section"], "")[start:end]
                key = f"{row['report']}/{row['section']}/{start}-{end}"
            else:
                text, key = report_text(sections), row["report"]
            if not text.strip():
                raise InputError("the referenced text is empty", path=path, record=lineno)
            items.append(GoldItem(key, text, _labels(row, path, lineno)))
    return items


def agreement(labeler: Labeler, items: list[GoldItem]) -> dict:
    """Per-observation accuracy of the labeler on gold items.

    `accuracy` counts every item (an observation neither side mentions agrees); `mentioned`
    restricts to items where the gold or the labeler gives a value, which is the harder figure;
    `missed` / `extra` / `wrong_value` split the disagreements by kind.
    """
    predictions = [labeler.label(item.text) for item in items]
    per = {}
    for j, name in enumerate(OBSERVATIONS):
        pairs = [(item.labels[j], pred[j]) for item, pred in zip(items, predictions)]
        agree = sum(g == p for g, p in pairs)
        shown = [(g, p) for g, p in pairs if g is not None or p is not None]
        per[name] = {
            "n": len(pairs),
            "accuracy": agree / len(pairs) if pairs else float("nan"),
            "mentioned": len(shown),
            "mentioned_accuracy": sum(g == p for g, p in shown) / len(shown) if shown else float("nan"),
            "gold": {str(v): sum(g == v for g, _ in pairs) for v in (1, 0, -1)},
            # Kinds of disagreement: a value the labeler never mentions (phrase-list coverage),
            # one it mentions where the gold does not, or both mention and differ (the rules).
            "missed": sum(g is not None and p is None for g, p in pairs),
            "extra": sum(g is None and p is not None for g, p in pairs),
            "wrong_value": sum(g is not None and p is not None and g != p for g, p in pairs),
        }
    exact = sum(tuple(p) == item.labels for item, p in zip(items, predictions))
    # Where both give a value to one of the 13 findings, how often it is the same value: the
    # negation / uncertainty rules alone, phrase-list coverage aside.
    both = [(item.labels[j], pred[j]) for item, pred in zip(items, predictions) for j in range(1, len(OBSERVATIONS))
            if item.labels[j] is not None and pred[j] is not None]
    disagreements = [
        {"key": item.key, "observation": name, "gold": item.labels[j], "labeler": pred[j], "text": item.text}
        for item, pred in zip(items, predictions)
        for j, name in enumerate(OBSERVATIONS)
        if item.labels[j] != pred[j]
    ]
    return {"items": len(items), "exact_match": exact / len(items) if items else float("nan"),
            "both_mentioned": len(both),
            "value_agreement": sum(g == p for g, p in both) / len(both) if both else float("nan"),
            "observations": per, "disagreements": disagreements}
