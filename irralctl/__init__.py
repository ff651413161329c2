"""irralctl: chest X-ray report generation, from raw archives to scored, explained reports."""

__version__ = "0.2.0"
