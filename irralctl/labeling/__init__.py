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

from irralctl.labeling.labeler import LABELER_NAME, LABELER_VERSION, OBSERVATIONS, Labeler, Mention

# The same, under the name other stages look for first.
__version__ = LABELER_VERSION

__all__ = ["LABELER_NAME", "LABELER_VERSION", "OBSERVATIONS", "Labeler", "Mention"]
