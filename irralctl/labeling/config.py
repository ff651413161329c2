"""`LabelConfig`: the options of `irralctl label` (light: it imports neither the labeller's rules
nor its phrase lists, so that reading the command's options costs nothing)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from irralctl.constants import NO_FINDING_POLICIES
from irralctl.utils.config import option, overwrite_option

LABEL_FORMATS = ("auto", "chexpert")


@dataclass(frozen=True)
class LabelConfig:
    """Options of `irralctl label` (saved beside the output as `<name>.config.json`)."""

    input: Path = option(help="Reports: a .txt file (one per line), a .csv, a .jsonl, or a prepared dataset "
                              "directory.", argument=True)
    out: Path = option(help="Output file, .csv or .jsonl (by extension); its options go to <name>.config.json "
                            "beside it.", short="-o")
    format: str = option("auto", "auto (input and output by extension), or chexpert: the Stanford CheXpert "
                                 "labeler's files (a .csv input without header, one report per row; a .csv output "
                                 "with Reports and the 14 observations as 1.0, 0.0, -1.0 or blank).",
                         choices=LABEL_FORMATS)
    column: str = option("report", "CSV input: the column holding the report text.")
    field: str = option("report", "JSONL input or dataset records: the field holding the report text.")
    no_finding: str = option(
        NO_FINDING_POLICIES[0], "How findings outside the 13 decide No Finding: incidental (degenerative change, "
        "granulomas, aortic atherosclerosis, scoliosis, ... keep it; emphysema and the like blank it) or chexpert "
        "(every finding of the original labeler's list blanks it).", choices=NO_FINDING_POLICIES)
    explain: bool = option(False, "Add, per observation, the phrase, sentence and rule that decided it.")
    overwrite: bool = overwrite_option()
