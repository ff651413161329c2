"""Data preparation: raw archives -> the prepared-dataset directory every other stage reads."""
