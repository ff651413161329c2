"""Decoding radiographs (PNG, JPEG, DICOM) into 8-bit greyscale arrays at a reduced size.

One function, `load_grey`, serves preparation and generation alike, so a study looks the same to
the model whichever path brought it in.

* JPEG: libjpeg-turbo through `simplejpeg`, decoding at 1/2, 1/4 or 1/8 scale in the DCT domain
  (several times faster than a full decode followed by a resize: MIMIC-CXR has 377k full-size
  JPEGs), in strict mode: a truncated or corrupt file is an error, not a silently grey image
  (Pillow, like libjpeg's default, fills a truncated scan with grey and says nothing). Exotic
  JPEGs simplejpeg cannot read (12-bit, lossless) go through Pillow.
* PNG: 8-bit or 16-bit greyscale/RGB; 16-bit values are scaled by their actual range.
* DICOM: pixel data through pydicom, the modality LUT (rescale), the VOI LUT or window
  centre/width, MONOCHROME1 inverted so that bone is bright, then scaled to 0-255. pydicom decodes
  uncompressed and RLE data itself and baseline JPEG through Pillow; JPEG Lossless, JPEG-LS and
  JPEG 2000 need the decoders of the `dicom` extra (pylibjpeg with its libjpeg and openjpeg
  plugins), which a file that needs them names: pip install 'irralctl[dicom]'. DICOM is decoded at
  full size, then resized with the same antialiasing filter: none of these decoders offers a
  reduced-resolution decode (JPEG 2000 could drop wavelet levels, but pylibjpeg-openjpeg's
  `decode` has no such option), and the intensity transforms need the full-range values anyway.
"""

from __future__ import annotations

import math
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


def _resize(img: Image.Image, shorter: int | None, size: tuple[int, int] | None = None) -> np.ndarray:
    """`img` resized to `size` (height, width), by default its shorter side to `shorter`. Pillow's
    bilinear resize widens its triangle filter by the reduction factor: an antialiasing filter, not
    a 2 x 2 interpolation. A DCT-scaled decode passes the size computed from the full-size image,
    so that the output does not depend on the scale the decoder picked."""
    if shorter is not None:
        h, w = size or target_size(img.height, img.width, shorter)
        if (h, w) != (img.height, img.width):
            img = img.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=None)
    return np.asarray(img, dtype=np.uint8)


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    arr = arr.astype(np.float32, copy=False)
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return np.clip((arr - lo) * (255.0 / (hi - lo)) + 0.5, 0, 255).astype(np.uint8)


# Pillow's own limit on pixels, applied to every decoder: a "decompression bomb" (a small file
# declaring a gigantic image) is refused before any memory is allocated for it.
MAX_PIXELS = 2 * Image.MAX_IMAGE_PIXELS


def _check_pixels(path: Path, height: int, width: int) -> None:
    if height * width > MAX_PIXELS:
        raise InputError(f"image of {width} x {height} pixels exceeds the {MAX_PIXELS:,}-pixel limit "
                         "(a decompression bomb, or not a radiograph)", path=path)


def _load_jpeg(path: Path, shorter: int | None) -> np.ndarray | None:
    """Strict, DCT-scaled JPEG decoding; None when simplejpeg cannot read this kind of JPEG."""
    import simplejpeg

    data = path.read_bytes()
    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    _check_pixels(path, height, width)
    h, w = target_size(height, width, shorter) if shorter is not None else (height, width)
    # libjpeg-turbo decodes at 1/2, 1/4 or 1/8 scale by dropping DCT coefficients (the IDCT of the
    # rest makes each output pixel the mean of its 2 x 2 ... 8 x 8 block): simplejpeg takes the
    # smallest such scale whose output is at least h x w, i.e. the largest reduction that keeps the
    # shorter side >= the target; the resize below finishes with an antialiasing filter. Entropy
    # decoding of the whole file remains (it dominates: a 1/8 decode costs about 2/3 of a full one).
    try:
        arr = simplejpeg.decode_jpeg(data, colorspace="GRAY", min_height=h, min_width=w, strict=True)[..., 0]
    except ValueError as e:
        try:  # readable without strictness: the file is damaged (truncated, corrupt scan data)
            simplejpeg.decode_jpeg(data, colorspace="GRAY", min_height=h, min_width=w, strict=False)
        except ValueError:
            return None  # a JPEG kind simplejpeg does not handle: Pillow's turn
        raise InputError(f"corrupt or truncated JPEG ({e})", path=path) from None
    return _resize(Image.fromarray(arr, mode="L"), shorter, (h, w))


def _load_pil(path: Path, shorter: int | None) -> np.ndarray:
    with Image.open(path) as img:
        _check_pixels(path, img.height, img.width)
        size = target_size(img.height, img.width, shorter) if shorter is not None else None
        if img.format == "JPEG" and size is not None:
            # DCT-domain downscaling: decode at the smallest 1/2^k scale still >= target size.
            img.draft("L", (size[1], size[0]))
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = _to_uint8(np.asarray(img))
            img = Image.fromarray(arr, mode="L")
        elif img.mode != "L":
            img = img.convert("L")
        else:
            img.load()
        return _resize(img, shorter, size)


def _load_dicom(path: Path, shorter: int | None) -> np.ndarray:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    decoder = None
    try:
        ds = pydicom.dcmread(path)
        _check_pixels(path, int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0))
        decoder = _decoder(path, ds)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = ds.pixel_array
    except InputError:
        raise
    except Exception as e:  # pydicom raises many types for broken or unsupported files
        raise InputError(f"unreadable DICOM ({type(e).__name__}: {_first_line(e)})", path=path,
                         hint=_codec_hint(decoder)) from None
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):  # colour secondary capture
        arr = arr[..., :3].mean(axis=-1)
    elif arr.ndim != 2:
        raise InputError(f"DICOM pixel data has shape {arr.shape}; expected one greyscale frame", path=path)
    try:
        slope = ds.get("RescaleSlope")
        if slope is not None and not (math.isfinite(float(slope)) and float(slope) != 0):
            raise ValueError(f"RescaleSlope {slope} is not a finite, non-zero scale")
        arr = apply_modality_lut(arr, ds)
        width = ds.get("WindowWidth")
        widths = list(width) if isinstance(width, pydicom.multival.MultiValue) else [width]
        has_voi = "VOILUTSequence" in ds or ("WindowCenter" in ds and width is not None)
        if has_voi and "VOILUTSequence" not in ds and any(w is None or float(w) <= 0 for w in widths):
            raise ValueError(f"WindowWidth {width} is not positive")
        if has_voi:
            arr = apply_voi_lut(arr, ds, index=0)
        if not np.isfinite(arr).all():
            raise ValueError("non-finite values after the rescale and window "
                             f"(RescaleSlope {slope}, RescaleIntercept {ds.get('RescaleIntercept')})")
    except Exception as e:  # a nonsensical window or LUT: named, never a crash
        raise InputError(f"unusable DICOM intensity transform ({_first_line(e)})", path=path) from None
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
        if _is_jpeg(path):
            arr = _load_jpeg(path, shorter)
            if arr is not None:
                return arr
        return _load_pil(path, shorter)
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise InputError(f"unreadable image ({_first_line(e)})", path=path) from None


def encode_png(arr: np.ndarray) -> bytes:
    """A (H, W) uint8 array as PNG bytes (lossless: `load_grey` gives the same array back)."""
    import io

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def _is_jpeg(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(3) == b"\xff\xd8\xff"
    except OSError:
        return False


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# What `pip install 'irralctl[dicom]'` adds to pydicom: its pylibjpeg decoder plugin (libjpeg:
# JPEG Lossless and JPEG-LS; openjpeg: JPEG 2000).
DICOM_EXTRA = "pip install 'irralctl[dicom]'"


def _decoder(path: Path, ds):
    """pydicom's decoder of a compressed file's transfer syntax (None when uncompressed); a file
    that no installed plugin can decode is refused here, naming the extra that decodes it."""
    from pydicom.pixels import get_decoder

    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None or not syntax.is_compressed:
        return None
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise InputError(f"DICOM transfer syntax {syntax.name} ({syntax}) is not supported", path=path) from None
    if not decoder.is_available:
        raise InputError(f"compressed DICOM ({syntax.name}) and no decoder for it is installed: {DICOM_EXTRA}",
                         path=path, hint="; ".join(decoder.missing_dependencies))
    return decoder


def _codec_hint(decoder) -> str | None:
    """When a compressed file failed with some of its decoders missing, the extra adds them."""
    if decoder is not None and any(m.startswith("pylibjpeg") for m in decoder.missing_dependencies):
        return f"more decoders for this transfer syntax: {DICOM_EXTRA}"
    return None


def is_dicom(path: Path) -> bool:
    """True when the file has DICOM's 128-byte preamble and "DICM" marker (whatever its extension)."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"
