"""CheXpert observations of chest X-ray reports, offline: `irralctl label`.

A re-implementation of the Stanford CheXpert labeler's behaviour (Irvin et al., "CheXpert: A
Large Chest Radiograph Dataset with Uncertainty Labels and Expert Comparison", AAAI 2019) that
needs no dependency parser and no download: the labeler's own mention / unmention phrase lists
(MIT licence, shipped unchanged in `chexpert/`) and irralctl's additions to them (`additions/`),
negation and uncertainty by scoped trigger rules seeded from its NegBio patterns, and its
aggregation rules. See `labeler` for the pipeline.

    >>> from irralctl.labeling import Labeler, OBSERVATIONS
    >>> Labeler().label("Heart size normal and lungs are clear. No edema or pneumonia. No effusion")
    [1, None, 0, None, None, 0, None, 0, None, None, 0, None, None, None]
"""

from __future__ import annotations

from irralctl.utils.lazy import lazy_exports

# Imported on first use: `irralctl.labeling.config` (read by `irralctl label` to build its options)
# must not load the rules and phrase lists through this package.
_exports, __all__ = lazy_exports(__name__, {
    "irralctl.labeling.labeler": ("LABELER_NAME", "LABELER_VERSION", "OBSERVATIONS", "Labeler", "Mention"),
    "irralctl.labeling.config": ("LabelConfig",),
})


def __getattr__(name: str) -> object:
    if name == "__version__":  # LABELER_VERSION, under the name other stages look for first
        return _exports("LABELER_VERSION")
    return _exports(name)
