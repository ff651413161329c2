"""R2Gen's preprocessed layout (annotation.json + an image folder), shared by IU X-Ray and MIMIC-CXR:
`reader` (the annotation, its image files) and `prepare` (`prepare iu-xray|mimic --from-r2gen`).
`irralctl export --to r2gen` writes the same layout (`irralctl.export.r2gen`)."""
