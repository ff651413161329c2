"""R2Gen's IU X-Ray split, read from the manifest shipped inside the package."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import irralctl
from irralctl.data import splits


def test_r2gen_split_is_read_from_package_data():
    manifest = splits._manifest(splits.R2GEN_MANIFEST)
    # Inside the package, so an installed wheel has it (not at the root of a source checkout).
    assert Path(str(manifest)).resolve().is_relative_to(Path(irralctl.__file__).resolve().parent)
    assignment = splits.r2gen_split()
    assert Counter(assignment.values()) == {"train": 2069, "val": 296, "test": 590}
    assert assignment["CXR2384_IM-0942"] == "train"
