"""Hugging Face `datasets` data (a `save_to_disk` folder or parquet files, local only): `reader`,
`config` and `prepare` (`irralctl prepare hf`). `irralctl export --to hf` writes what it reads."""
