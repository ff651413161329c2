"""IU X-Ray (Open-i): `reader` (reports XML, image folders and archives, metadata, R2Gen's
annotation), `config` and `prepare` (`irralctl prepare iu-xray`)."""
