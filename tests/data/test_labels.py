"""`attach_labels`: CheXpert labels on prepared records, and what the dataset records about them."""

from __future__ import annotations

from irralctl.data.labels import attach_labels
from irralctl.labeling import LABELER_NAME, LABELER_VERSION


def test_attach_labels_records_name_version_and_no_finding_policy():
    records = [{"report": "Clear lungs. Mild degenerative change of the spine."}, {"report": "Mild cardiomegaly."}]
    info = attach_labels(records)
    assert info == {"name": LABELER_NAME, "version": LABELER_VERSION, "no_finding": "incidental"}
    assert [r["labels"]["chexpert"][0] for r in records] == [1, None]
    info = attach_labels(records, no_finding="chexpert")
    assert info["no_finding"] == "chexpert"
    assert [r["labels"]["chexpert"][0] for r in records] == [None, None]
