"""Data sources: one package per dataset (reader, report text, preparation), each building the
shared prepared-dataset format through `irralctl.data.pipeline`."""
