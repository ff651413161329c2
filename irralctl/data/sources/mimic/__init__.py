"""MIMIC-CXR-JPG with the MIMIC-CXR reports: `reader` (split, metadata and CheXpert tables, image
paths, the report archive), `reports` (the report section parser), `config` and `prepare`
(`irralctl prepare mimic`)."""
