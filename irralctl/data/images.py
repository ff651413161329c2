"""Decoding radiographs (PNG, JPEG, DICOM) into 8-bit greyscale arrays at a reduced size.

One function, `load_grey`, serves preparation and generation alike, so a study looks the same to
the model whichever path brought it in.

* JPEG: Pillow's `draft` asks libjpeg to decode at 1/2, 1/4 or 1/8 scale with DCT scaling, which
  is several times faster than a full decode followed by a resize (MIMIC-CXR has 377k full-size
  JPEGs); the final resize to the target size is then small.
* PNG: 8-bit or 16-bit greyscale/RGB; 16-bit values are scaled by their actual range.
* DICOM: pixel data through pydicom (JPEG 2000 etc. via pylibjpeg), the modality LUT (rescale),
  the VOI LUT or window centre/width, MONOCHROME1 inverted so that bone is bright, then scaled to
  0-255.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from irralctl.errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm", ".dicom"}


def target_size(height: int, width: int, shorter: int) -> tuple[int, int]:
    """(height, width) with the shorter side scaled to `shorter` (never upscaled)."""
    s = min(height, width)
    if s <= shorter:
        return height, width
    scale = shorter / s
    return max(1, round(height * scale)), max(1, round(width * scale))


def _resize(img: Image.Image, shorter: int | None) -> np.ndarray:
    if shorter is not None:
        h, w = target_size(img.height, img.width, shorter)
        if (h, w) != (img.height, img.width):
            img = img.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=None)
    return np.asarray(img, dtype=np.uint8)


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    arr = arr.astype(np.float32, copy=False)
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return np.clip((arr - lo) * (255.0 / (hi - lo)) + 0.5, 0, 255).astype(np.uint8)


def _load_pil(path: Path, shorter: int | None) -> np.ndarray:
    with Image.open(path) as img:
        if img.format == "JPEG" and shorter is not None:
            # DCT-domain downscaling: decode at the smallest 1/2^k scale still >= target size.
            h, w = target_size(img.height, img.width, shorter)
            img.draft("L", (w, h))
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = _to_uint8(np.asarray(img))
            img = Image.fromarray(arr, mode="L")
        elif img.mode != "L":
            img = img.convert("L")
        else:
            img.load()
        return _resize(img, shorter)


def _load_dicom(path: Path, shorter: int | None) -> np.ndarray:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = ds.pixel_array
    except Exception as e:  # pydicom raises many types for broken or unsupported files
        raise InputError(f"unreadable DICOM ({type(e).__name__}: {e})", path=path) from None
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):  # colour secondary capture
        arr = arr[..., :3].mean(axis=-1)
    elif arr.ndim != 2:
        raise InputError(f"DICOM pixel data has shape {arr.shape}; expected one greyscale frame", path=path)
    arr = apply_modality_lut(arr, ds)
    has_voi = "VOILUTSequence" in ds or ("WindowCenter" in ds and "WindowWidth" in ds)
    if has_voi:
        arr = apply_voi_lut(arr, ds, index=0)
    arr = _to_uint8(arr)
    if str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper() == "MONOCHROME1":
        arr = 255 - arr
    return _resize(Image.fromarray(arr, mode="L"), shorter)


def load_grey(path: str | Path, shorter: int | None = 256) -> np.ndarray:
    """Decode `path` into a (H, W) uint8 array whose shorter side is `shorter` (None: full size)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("image file not found", path=path)
    suffix = path.suffix.lower()
    if suffix in (".dcm", ".dicom") or is_dicom(path):
        return _load_dicom(path, shorter)
    try:
        return _load_pil(path, shorter)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InputError(f"unreadable image ({e})", path=path) from None


def is_dicom(path: Path) -> bool:
    """True when the file has DICOM's 128-byte preamble and "DICM" marker (whatever its extension)."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"
