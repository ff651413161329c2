"""Decoding PNG, JPEG and DICOM into 8-bit greyscale at a reduced size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from irralctl.data.images import load_grey, target_size
from irralctl.errors import InputError
from tests.fixtures.marks import fast_few


def gradient(h=120, w=100, top=65535) -> np.ndarray:
    return np.linspace(0, top, h * w).reshape(h, w)


def test_target_size_never_upscales():
    assert target_size(3000, 2500, 256) == (307, 256)
    assert target_size(100, 80, 256) == (100, 80)


def test_png_8bit_rgb_and_16bit(tmp_path: Path):
    g8 = gradient(top=255).astype(np.uint8)
    Image.fromarray(g8).save(tmp_path / "a.png")
    Image.fromarray(np.stack([g8] * 3, -1)).save(tmp_path / "rgb.png")
    Image.fromarray(gradient().astype(np.uint16)).save(tmp_path / "w.png")
    a, rgb, w = (load_grey(tmp_path / n, None) for n in ("a.png", "rgb.png", "w.png"))
    assert a.dtype == np.uint8 and (a == g8).all() and (rgb == g8).all()
    # 16-bit values are scaled by their range to the full 0..255.
    assert w.min() == 0 and w.max() == 255 and np.abs(w.astype(int) - g8.astype(int)).max() <= 1


# How far the DCT-scaled decode (the largest 1/2^k reduction keeping the shorter side >= the target,
# then Pillow's antialiased bilinear resize) may stray from a full decode + the same resize, in grey
# levels of 0..255: the scaled IDCT averages each 2 x 2 ... 8 x 8 block (a box filter) where the
# full-size path uses only the triangle filter. Measured on the real radiographs below: mean <= 1.6,
# 99th percentile <= 10 (noisy films at 1/4 scale are the worst); text burnt into a film can differ
# more at a few of its edge pixels, which the percentile leaves out.
MEAN_TOLERANCE = 2.0
P99_TOLERANCE = 12


def _full_decode_then_resize(path: Path, shorter: int) -> np.ndarray:
    with Image.open(path) as img:
        img = img.convert("L")
        h, w = target_size(img.height, img.width, shorter)
        return np.asarray(img.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=None))


def _assert_close_to_full_decode(path: Path, shorter: int) -> None:
    small = load_grey(path, shorter)
    reference = _full_decode_then_resize(path, shorter)
    assert small.shape == reference.shape and min(small.shape) == shorter
    diff = np.abs(small.astype(int) - reference.astype(int))
    assert diff.mean() <= MEAN_TOLERANCE and np.percentile(diff, 99) <= P99_TOLERANCE, \
        (path.name, shorter, diff.mean(), np.percentile(diff, 99))


def test_jpeg_reduced_decode_matches_full_decode(tmp_path: Path):
    rng = np.random.default_rng(0)
    base = Image.fromarray(rng.normal(128, 30, (40, 32)).clip(0, 255).astype(np.uint8)).resize((1600, 2000), Image.BICUBIC)
    base.save(tmp_path / "big.jpg", quality=95)
    small = load_grey(tmp_path / "big.jpg", 256)
    assert small.shape == (320, 256)
    reference = np.asarray(base.resize((256, 320), Image.BILINEAR, reducing_gap=None), dtype=float)
    assert np.abs(small.astype(float) - reference).mean() < 3.0


@pytest.mark.parametrize("shorter", fast_few([224, 256, 512], {256}))
def test_full_size_jpeg_scaled_decode_stays_within_tolerance_of_full_decode(tmp_path: Path, shorter):
    """A 2,544 x 3,056 film-like JPEG (MIMIC-CXR-JPG's usual size, quality 95, detector-like noise)."""
    rng = np.random.default_rng(1)
    smooth = Image.fromarray(rng.normal(128, 40, (49, 41)).clip(0, 255).astype(np.uint8)).resize((2544, 3056), Image.BICUBIC)
    noisy = np.asarray(smooth, dtype=np.float32) + rng.normal(0, 6, (3056, 2544)).astype(np.float32)
    Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(tmp_path / "full.jpg", quality=95)
    _assert_close_to_full_decode(tmp_path / "full.jpg", shorter)


@pytest.mark.parametrize("shorter", fast_few([224, 256, 512], {256}))
def test_real_radiographs_scaled_decode_stays_within_tolerance_of_full_decode(shared_data, shorter):
    paths = sorted((shared_data / "images" / "kermany").glob("*.jpeg"))
    assert paths
    for path in paths:
        _assert_close_to_full_decode(path, shorter)


def test_jpeg_size_does_not_depend_on_the_decode_scale(tmp_path: Path):
    """Landscape and portrait files: the output size is computed from the full-size image."""
    rng = np.random.default_rng(2)
    for w, h in ((1632, 1225), (1225, 1632), (2544, 3056)):
        Image.fromarray(rng.integers(0, 255, (h, w), dtype=np.uint8)).save(tmp_path / "x.jpg", quality=90)
        assert load_grey(tmp_path / "x.jpg", 256).shape == target_size(h, w, 256)


def _write_dicom(path: Path, pixels: np.ndarray, photometric: str, window=None, slope=1.0, intercept=0.0,
                 compress=None):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    if compress is not None:  # a transfer syntax UID pydicom can encode (RLE natively, J2K with openjpeg)
        ds.compress(compress)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_monochrome1_inverted_and_window_applied(tmp_path: Path):
    pixels = gradient(64, 48, 4095)
    m2 = load_grey(_write_dicom(tmp_path / "m2.dcm", pixels, "MONOCHROME2"), None)
    m1 = load_grey(_write_dicom(tmp_path / "m1.dcm", pixels, "MONOCHROME1"), None)
    assert (m1.astype(int) + m2.astype(int) == 255).all()
    assert m2[0, 0] == 0 and m2[-1, -1] == 255
    # A narrow window saturates everything outside [1500, 2500]: a third of the ramp at each end.
    win = load_grey(_write_dicom(tmp_path / "w.dcm", pixels, "MONOCHROME2", window=(2000, 1000)), None)
    assert (win == 0).mean() == pytest.approx(1500 / 4095, abs=0.02)
    assert (win == 255).mean() == pytest.approx(1595 / 4095, abs=0.02)
    # No extension needed: DICOM is recognised by its preamble.
    (tmp_path / "m1.dcm").rename(tmp_path / "noext")
    assert (load_grey(tmp_path / "noext", None) == m1).all()


@pytest.mark.parametrize("syntax, encoder", [("RLELossless", None), ("JPEG2000Lossless", "openjpeg")])
def test_compressed_dicom_decodes_as_the_uncompressed_one(tmp_path: Path, syntax, encoder):
    import pydicom
    import pydicom.uid

    if encoder:
        pytest.importorskip(encoder, reason=f"encoding {syntax} needs pylibjpeg-openjpeg (irralctl[dicom])")
    uid = getattr(pydicom.uid, syntax)
    pixels = gradient(64, 48, 4095)
    plain = _write_dicom(tmp_path / "plain.dcm", pixels, "MONOCHROME1")
    packed = _write_dicom(tmp_path / "packed.dcm", pixels, "MONOCHROME1", compress=uid)
    assert pydicom.dcmread(packed).file_meta.TransferSyntaxUID == uid
    assert packed.stat().st_size < plain.stat().st_size
    for size in (None, 32):
        np.testing.assert_array_equal(load_grey(packed, size), load_grey(plain, size))


def _jpeg_ls_decoder():
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGLSLossless

    return get_decoder(JPEGLSLossless)


def test_jpeg_ls_dicom_decodes_with_the_dicom_extra():
    from pydicom.data import get_testdata_file  # files bundled with pydicom

    if not _jpeg_ls_decoder().is_available:
        pytest.skip("JPEG-LS decoding needs pylibjpeg-libjpeg: pip install 'irralctl[dicom]'")
    plain = load_grey(get_testdata_file("MR_small.dcm"), None)
    jls = load_grey(get_testdata_file("MR_small_jpeg_ls_lossless.dcm"), None)
    assert jls.shape == (64, 64) and jls.std() > 10
    np.testing.assert_array_equal(jls, plain)


def test_compressed_dicom_without_its_decoder_names_the_dicom_extra(monkeypatch):
    from pydicom.data import get_testdata_file

    decoder = _jpeg_ls_decoder()
    # As on a machine without the extra, whatever this one has installed.
    monkeypatch.setattr(decoder, "_available", {})
    monkeypatch.setitem(decoder._unavailable, "pylibjpeg", ("pylibjpeg>=2.0", "pylibjpeg-libjpeg>=2.1"))
    path = get_testdata_file("MR_small_jpeg_ls_lossless.dcm")
    with pytest.raises(InputError, match=r"JPEG-LS Lossless.*no decoder for it is installed: "
                                         r"pip install 'irralctl\[dicom\]'") as e:
        load_grey(path, 256)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    assert "pylibjpeg-libjpeg" in e.value.hint


def test_real_dicoms_uncompressed_and_jpeg2000_agree(shared_data):
    d = shared_data / "images" / "dicom"
    a = load_grey(d / "RG1_UNCR.dcm", 256)
    b = load_grey(d / "RG1_J2KR.dcm", 256)
    assert a.shape == (272, 256) and (a == b).all()
    # MONOCHROME1 source: after inversion the lungs are darker than the mediastinum (bright).
    h, w = a.shape
    lungs = a[h // 3: h // 2, w // 8: w // 3].mean()
    spine = a[h // 3: h // 2, w // 2 - 8: w // 2 + 8].mean()
    assert spine > lungs + 20


def test_real_jpegs(shared_data):
    for p in sorted((shared_data / "images" / "kermany").glob("*.jpeg"))[:4]:
        img = load_grey(p, 256)
        assert min(img.shape) == 256 and img.dtype == np.uint8 and img.std() > 10


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\xff\xd8\xff\xe0broken jpeg"])
def test_unreadable_files_raise_input_error_naming_the_file(tmp_path: Path, content: bytes):
    p = tmp_path / "x.jpg"
    p.write_bytes(content)
    with pytest.raises(InputError) as e:
        load_grey(p)
    assert str(p) in str(e.value)
    with pytest.raises(InputError, match="not found"):
        load_grey(tmp_path / "missing.png")
