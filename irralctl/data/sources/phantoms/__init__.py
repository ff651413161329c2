"""Synthetic chest-radiograph phantoms whose findings, and therefore whose correct report, are known.

Modules: `cases` (the ground truth and its CheXpert labels), `reports` (report text), `render`
(the two views), `config` and `prepare` (`irralctl prepare phantoms`).
"""
