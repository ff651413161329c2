"""Attaching CheXpert observations to prepared studies (`labels.chexpert` in every record)."""

from __future__ import annotations

from irralctl.constants import NO_FINDING_POLICIES
from irralctl.labeling import Labeler


def attach_labels(records: list[dict], field: str = "report", no_finding: str = NO_FINDING_POLICIES[0]) -> dict:
    """Label `record[field]` of every record in place; returns the labeller's name, version and
    No Finding policy (recorded in the dataset's info)."""
    labeler = Labeler(no_finding=no_finding)
    values = labeler.label_many([r[field] for r in records])
    for r, v in zip(records, values):
        r.setdefault("labels", {})["chexpert"] = v
    return labeler.info()
