"""Attaching CheXpert observations to prepared studies (`labels.chexpert` in every record)."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def attach_labels(records: list[dict], field: str = "report") -> dict | None:
    """Label `record[field]` of every record in place; returns the labeller's name and version."""
    try:
        from irralctl.labeling import LABELER_NAME, LABELER_VERSION, Labeler
    except ImportError:  # the labelling stage is not installed in this build
        log.warning("labelling stage unavailable: studies get no CheXpert labels")
        return None
    labeler = Labeler()
    values = labeler.label_many([r[field] for r in records])
    for r, v in zip(records, values):
        r.setdefault("labels", {})["chexpert"] = v
    return {"name": LABELER_NAME, "version": LABELER_VERSION}
