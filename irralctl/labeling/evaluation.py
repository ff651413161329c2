"""Agreement of the labeler with the hand-labelled IU X-Ray gold set (tests/data/labeling_gold_*).

The gold files hold only report numbers, section names, character offsets and labels; the texts
come from the Open-i archive `NLMCXR_reports.tgz` (`ecgen-radiology/<n>.xml`, one
`<AbstractText Label="FINDINGS">` and one `"IMPRESSION"` per report), read here with tarfile and
ElementTree. A report's text is FINDINGS then IMPRESSION, the present ones joined by one space.

Column "No Finding" follows the original CheXpert labeler's convention (blank when any other
finding is described); the version-2 set also has "No Finding (incidental)", the reader's No
Finding when incidental findings do not count. `load_gold(..., no_finding=policy)` picks the
column that matches a `Labeler(no_finding=policy)`.
"""

from __future__ import annotations

import csv
import random
import re
import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from irralctl.constants import NO_FINDING_POLICIES
from irralctl.errors import ConfigError, InputError
from irralctl.labeling.labeler import OBSERVATIONS, Labeler

SECTIONS = ("findings", "impression")
# The gold column of No Finding for each labeler policy.
NO_FINDING_COLUMNS = {"chexpert": "No Finding", "incidental": "No Finding (incidental)"}


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


def _labels(row: dict, path: Path, lineno: int, no_finding_column: str) -> tuple[int | None, ...]:
    out = []
    for name in OBSERVATIONS:
        column = no_finding_column if name == "No Finding" else name
        cell = (row.get(column) or "").strip()
        if cell not in ("", "1", "0", "-1"):
            raise InputError(f"label must be 1, 0, -1 or empty, got {cell!r}", path=path, record=lineno, field=column)
        out.append(None if cell == "" else int(cell))
    return tuple(out)


def load_gold(path: str | Path, reports: dict[str, dict[str, str]], *, no_finding: str = "chexpert") -> list[GoldItem]:
    """Gold items of one CSV: sentence rows (report, section, start, end) or report rows (report).

    `no_finding`: the labeler policy the items will be compared with; No Finding is read from its
    column (`NO_FINDING_COLUMNS`), which the file must have.
    """
    if no_finding not in NO_FINDING_POLICIES:
        raise ConfigError(f"no_finding must be one of {', '.join(NO_FINDING_POLICIES)}, not {no_finding!r}")
    path = Path(path)
    column = NO_FINDING_COLUMNS[no_finding]
    items = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if column not in (reader.fieldnames or []):
            raise InputError(f"no column '{column}' (the gold No Finding of policy {no_finding})", path=path, record=1,
                             hint="only the version-2 report set has both No Finding columns")
        for lineno, row in enumerate(reader, start=2):
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
            items.append(GoldItem(key, text, _labels(row, path, lineno, column)))
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



def positive_scores(labeler: Labeler, items: list[GoldItem], *, uncertain: str = "negative") -> dict:
    """Precision, recall and F1 of the positive class per observation, and micro-averaged.

    `uncertain` says how -1 counts, on both sides alike: "negative" (the default of `irralctl
    score` and of R2Gen / CMN's tables: only 1 is positive) or "positive" (1 and -1 are). A blank
    is negative. An observation with no predicted positive has precision 0 (as no true positive).
    """
    if uncertain not in ("negative", "positive"):
        raise ValueError(f"uncertain must be 'negative' or 'positive', got {uncertain!r}")
    hit = {1, -1} if uncertain == "positive" else {1}
    predictions = [labeler.label(item.text) for item in items]
    per = {}
    totals = {"all": [0, 0, 0], "findings": [0, 0, 0]}
    for j, name in enumerate(OBSERVATIONS):
        tp = fp = fn = 0
        for item, pred in zip(items, predictions):
            g, p = item.labels[j] in hit, pred[j] in hit
            tp += g and p
            fp += p and not g
            fn += g and not p
        per[name] = {"gold_positive": tp + fn, "predicted_positive": tp + fp, "tp": tp, "fp": fp, "fn": fn,
                     **_prf(tp, fp, fn)}
        for key in ("all", "findings") if j else ("all",):
            totals[key] = [a + b for a, b in zip(totals[key], (tp, fp, fn))]
    return {"items": len(items), "uncertain": uncertain, "observations": per,
            "micro": {key: {"tp": t[0], "fp": t[1], "fn": t[2], **_prf(*t)} for key, t in totals.items()}}


def _prf(tp: int, fp: int, fn: int) -> dict:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fn else float("nan")
    return {"precision": precision, "recall": recall, "f1": f1}

# --- drawing a stratified gold set ------------------------------------------------------------
@dataclass(frozen=True)
class Stratum:
    """Reports whose lower-cased text matches `pattern`; with `affirmed`, only in a sentence that
    has no negation or normality word (to reach the rare positive mentions of a finding)."""

    name: str
    pattern: str
    n: int
    affirmed: bool = False


_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")
_NEGATED = re.compile(r"\b(?:no|not|without|negative|normal|clear|free|unremarkable|resolved)\b")

_V2_KEYWORDS = (
    ("enlarged_cardiomediastinum", r"mediastin"),
    ("cardiomegaly", r"cardiomegaly|heart|cardiac"),
    ("lung_lesion", r"nodul|\bmass|tumor|neoplas|lesion|metasta"),
    ("lung_opacity", r"opaci|infiltrat|air ?space|densit|scar|interstitial|reticul"),
    ("edema", r"edema|congest|\bchf\b|heart failure"),
    ("consolidation", r"consolidat"),
    ("pneumonia", r"pneumoni|infect|infiltrat|airspace disease"),
    ("atelectasis", r"atelecta|collapse"),
    ("pneumothorax", r"pneumothora"),
    ("pleural_effusion", r"effusion|pleural fluid|blunt|costophrenic"),
    ("pleural_other", r"pleural thick|capping|plaque|fibro|pleural scar|pleural-parenchymal|pleuroparenchymal"),
    ("fracture", r"fractur|healed|deformit|callus"),
    ("support_devices", r"catheter|tube|\bline\b|pacemaker|pacer|stent|clip|wire|sternotomy|cabg|\bport\b|"
                        r"device|valve|hardware|\blead|stimulator|prosthe|\btip\b|fixation|screw|plate"),
)
# The version-2 report set (tests/data/labeling_gold_reports_v2.csv): per observation, 14 reports
# that affirm one of its keywords and 5 that mention one at all; then the wording classes of the
# labeler issue (an enlarged mediastinum, a device named by its tip, incidental findings, masked
# words) and 40 reports at random. Drawn in this order with one seeded generator.
GOLD_V2_SEED = 20240611
GOLD_V2_STRATA: tuple[Stratum, ...] = (
    *(Stratum(f"{name}:affirmed", pattern, 14, affirmed=True) for name, pattern in _V2_KEYWORDS),
    *(Stratum(f"{name}:any", pattern, 5) for name, pattern in _V2_KEYWORDS),
    Stratum("class:mediastinum_enlarged", r"(?:enlarg|widen|promin)\w*\s+(?:\w+\s+){0,3}(?:cardio)?mediastin|"
                                          r"mediastin\w*\s+(?:\w+\s+){0,4}(?:enlarg|widen|promin)", 10),
    Stratum("class:device_tip", r"xxxx\s+(?:with|whose)\s+(?:its\s+)?tip|\btip\s+(?:projects|projecting|overl|in|at)", 10),
    Stratum("class:incidental", r"granuloma|degenerat|spondyl|tortuous|healed|\bold\b|calcified", 15),
    Stratum("class:masked", r"xxxx", 10),
    Stratum("random", r"", 40),
)


def stratified_sample(texts: dict[str, str], strata: Sequence[Stratum], seed: int,
                      exclude: frozenset[str] = frozenset()) -> list[tuple[str, str, str]]:
    """(report, stratum, part) for a seeded stratified draw, reproducible from the same inputs.

    Strata are drawn in order; each takes `n` reports at random among those that match and were
    neither excluded nor drawn before. Within a stratum the draws alternate between the parts
    "dev" (used to develop rules) and "held-out" (not looked at while developing), so both halves
    are stratified alike.
    """
    rng = random.Random(seed)
    ids = sorted((k for k in texts if k not in exclude and texts[k].strip()), key=lambda k: (len(k), k))
    lowered = {k: texts[k].lower() for k in ids}
    taken: set[str] = set()
    out = []
    for stratum in strata:
        pattern = re.compile(stratum.pattern)
        candidates = [k for k in ids if k not in taken and _matches(pattern, lowered[k], stratum.affirmed)]
        rng.shuffle(candidates)
        for i, k in enumerate(candidates[: stratum.n]):
            taken.add(k)
            out.append((k, stratum.name, "dev" if i % 2 == 0 else "held-out"))
    return out


def _matches(pattern: re.Pattern, text: str, affirmed: bool) -> bool:
    if not affirmed:
        return pattern.search(text) is not None
    return any(pattern.search(s) and not _NEGATED.search(s) for s in _SENTENCE_END.split(text))
