"""Attaching CheXpert observations to prepared studies (`labels.chexpert` in every record)."""

from __future__ import annotations

from irralctl.labeling import LABELER_NAME, LABELER_VERSION, Labeler


def attach_labels(records: list[dict], field: str = "report") -> dict:
    """Label `record[field]` of every record in place; returns the labeller's name and version."""
    values = Labeler().label_many([r[field] for r in records])
    for r, v in zip(records, values):
        r.setdefault("labels", {})["chexpert"] = v
    return {"name": LABELER_NAME, "version": LABELER_VERSION}
