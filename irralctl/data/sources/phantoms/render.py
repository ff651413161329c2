"""Rendering phantom studies: a frontal (PA) and a lateral view of a `PhantomCase` (`render_study`).

Anatomy (body outline, lungs, heart and mediastinum, diaphragm domes, ribs, clavicles, spine,
trachea, hila, vessels) varies with nuisance parameters (patient size, shift, rotation,
inspiration, exposure, noise, rib spacing), so a model must read the findings; each finding is
drawn large enough to be obvious at 64 px, except those of the variants made to be hard
(cases.py): a small effusion or a retrocardiac consolidation changes only the lateral view, and
a `subtle` case's nodule (about 2 px across at 64 px), consolidation (a smaller patch of a third
of the density) and pneumothorax (a rim about 1 px wide at 64 px) need the full resolution.
Plain numpy, deterministic given a generator.

Geometry convention: coordinates x, y in [-1, 1], x to the image's right, y down. Frontal views
are displayed as radiologists read them, the patient's right on the image's left; lateral views
show the patient facing the image's left (anterior left, spine right).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from irralctl.data.sources.phantoms.cases import CTR_ENLARGED, CTR_NORMAL, PhantomCase
from irralctl.errors import ConfigError

# --------------------------------------------------------------------------------------------
# Rendering helpers
#
# Images are built as a "density" map in display units (0 air outside the body, ~0.7 soft
# tissue, ~0.35 aerated lung, bone and metal brighter), then exposure-mapped with noise.
# Every pixel knows its patient-frame coordinates (the nuisance scale, shift and rotation are
# applied to the coordinates, not to the image, so nothing is resampled); local structures are
# computed only inside their bounding box, which keeps a study at a few milliseconds.

_F = np.float32


@functools.lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1] (x right, y down), built once per size, read-only."""
    c = (np.arange(size, dtype=np.float32) + 0.5) * _F(2.0 / size) - _F(1.0)
    x = np.broadcast_to(c[None, :], (size, size))
    y = np.broadcast_to(c[:, None], (size, size))
    return x, y


@functools.lru_cache(maxsize=4)
def _texture_bank(size: int) -> dict[str, np.ndarray]:
    """Constant (2 size, 2 size) random textures; a study crops random windows out of them.

    Generating smooth random fields per study (FFT or matrix products) costs more than all the
    anatomy together; windows of a fixed bank, at random offsets and flips, vary just as much
    for our purpose. The bank is seeded by a constant, so it is part of PHANTOM_VERSION.
    """
    rng = np.random.default_rng(20240611)
    n = 2 * size
    freq = np.fft.fftfreq(n)
    rfreq = np.fft.rfftfreq(n)
    k2 = freq[:, None] ** 2 + rfreq[None, :] ** 2

    def smooth(corr: float) -> np.ndarray:
        sigma_px = corr * size / 2.0  # correlation length given in coordinate units
        spec = np.fft.rfft2(rng.standard_normal((n, n))) * np.exp(-2.0 * np.pi**2 * sigma_px**2 * k2)
        f = np.fft.irfft2(spec, s=(n, n))
        return (f / f.std()).astype(np.float32)

    bank = {
        # Vessel markings: thin ridges along the zero set of a smooth field.
        "vessel": np.exp(-((smooth(0.05) * 3.2) ** 2)).astype(np.float32),
        # Interstitial (edema) pattern: a coarser, denser reticulation.
        "reticular": np.exp(-((smooth(0.035) * 2.0) ** 2)).astype(np.float32),
        # Patchiness of consolidation.
        "patchy": smooth(0.07),
        # Film mottle and quantum noise.
        "mottle": smooth(0.012),
        "white": rng.standard_normal((n, n)).astype(np.float32),
    }
    for arr in bank.values():
        arr.setflags(write=False)
    return bank


def _crop(bank: np.ndarray, u: np.ndarray, size: int) -> np.ndarray:
    """A (size, size) window of a bank texture at offsets/flips given by three uniforms."""
    r0, c0 = int(u[0] * size), int(u[1] * size)
    win = bank[r0 : r0 + size, c0 : c0 + size]
    flip = int(u[2] * 4)
    if flip & 1:
        win = win[::-1]
    if flip & 2:
        win = win[:, ::-1]
    return win


def _ramp(d: np.ndarray, width: float) -> np.ndarray:
    """0 where d < -width/2, 1 where d > width/2, linear between: an anti-aliased inside test."""
    out = d * _F(1.0 / width)
    out += _F(0.5)
    return np.clip(out, 0.0, 1.0, out=out)


def _ellipse(x, y, cx, cy, ax, ay, edge=0.015):
    """Soft mask of an axis-aligned ellipse; `edge` is the transition width in coordinate units."""
    dx = (x - _F(cx)) * _F(1.0 / ax)
    dy = (y - _F(cy)) * _F(1.0 / ay)
    f = dx * dx
    f += dy * dy
    # (1 - f) * min(a) / 2 approximates the inside distance near the boundary.
    return _ramp((_F(1.0) - f) * _F(min(ax, ay) * 0.5), edge)


def _gauss(x, y, cx, cy, sx, sy):
    dx = (x - _F(cx)) * _F(1.0 / sx)
    dy = (y - _F(cy)) * _F(1.0 / sy)
    q = dx * dx
    q += dy * dy
    q *= _F(-0.5)
    return np.exp(q, out=q)


def _quad_through(a: float, b: float, c: float, fa: float, fb: float, fc: float) -> tuple[float, ...]:
    """Coefficients (p2, p1, p0) of the parabola through (a, fa), (b, fb), (c, fc)."""
    p2, p1, p0 = np.polyfit([a, b, c], [fa, fb, fc], 2)
    return float(p2), float(p1), float(p0)


def _curve_band(x, y, pts, half_width, edge=0.01):
    """Soft band around the curve x = g(y) through three (x, y) points (a parabola in y), limited
    to the y range of the points. Catheters, tubes and leads all run monotonically in y."""
    (x0, y0), (x1, y1), (x2, y2) = pts
    p2, p1, p0 = _quad_through(y0, y1, y2, x0, x1, x2)
    g = (_F(p2) * y + _F(p1)) * y + _F(p0)
    slope = _F(2 * p2) * y + _F(p1)
    # Horizontal distance over sqrt(1 + g'^2) is the normal distance, for an even width.
    dist = np.abs(x - g) / np.sqrt(_F(1.0) + slope * slope)
    band = _ramp(_F(half_width) - dist, edge)
    band *= _ramp(y - _F(min(y0, y2)), edge)
    band *= _ramp(_F(max(y0, y2)) - y, edge)
    return band


def _rounded_box(x, y, cx, cy, hx, hy, r, edge=0.012):
    qx = np.maximum(np.abs(x - _F(cx)) - _F(hx - r), 0.0)
    qy = np.maximum(np.abs(y - _F(cy)) - _F(hy - r), 0.0)
    return _ramp(_F(r) - np.sqrt(qx * qx + qy * qy), edge)


class _Frame:
    """Patient-frame coordinates of every pixel of one view, and pixel boxes around regions."""

    def __init__(self, size: int, scale: float, shift: tuple[float, float], angle_deg: float):
        gx, gy = _grid(size)
        c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
        xs = gx - _F(shift[0])
        ys = gy - _F(shift[1])
        self.x = (xs * _F(c) + ys * _F(s)) * _F(1.0 / scale)
        self.y = (ys * _F(c) - xs * _F(s)) * _F(1.0 / scale)
        self.size = size
        self._fwd = (c, s, scale, shift)

    def box(self, x0: float, x1: float, y0: float, y1: float) -> tuple[slice, slice]:
        """Pixel slices covering the patient-frame rectangle [x0, x1] x [y0, y1]."""
        c, s, k, (dx, dy) = self._fwd
        px = np.array([x0, x1, x0, x1])
        py = np.array([y0, y0, y1, y1])
        xo = k * (c * px - s * py) + dx
        yo = k * (s * px + c * py) + dy
        half = self.size / 2.0
        cols = (xo + 1.0) * half
        rows = (yo + 1.0) * half
        c0 = min(max(int(math.floor(cols.min())) - 1, 0), self.size)
        c1 = min(max(int(math.ceil(cols.max())) + 1, 0), self.size)
        r0 = min(max(int(math.floor(rows.min())) - 1, 0), self.size)
        r1 = min(max(int(math.ceil(rows.max())) + 1, 0), self.size)
        return slice(r0, r1), slice(c0, c1)

    def at(self, sl: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
        return self.x[sl], self.y[sl]


@dataclass(frozen=True)
class _Nuisance:
    """Per-study anatomy and acquisition parameters that carry no finding."""

    scale: float
    shift: tuple[float, float]
    angle: float
    body_w: float
    lung_x: float
    lung_a: float
    apex: float
    dome_right: float
    dome_left: float
    ctr: float
    heart_x: float
    heart_h: float
    rib_spacing: float
    rib_phase: float
    rib_curve: float
    rib_amp: float
    clavicle_y: float
    gastric: float
    lat_scale: float
    lat_shift: tuple[float, float]
    lat_angle: float
    contrast: float
    offset: float
    gamma: float
    noise: float
    textures: tuple[float, ...]  # uniforms placing the texture windows


# Lung geometry shared by the renderer and `_thoracic_halfwidth`: the lungs are rounded above
# `_LUNG_MID` and below it their lateral border flares out by `_LUNG_FLARE` per unit of height.
_LUNG_FLARE = 0.12
_LUNG_MID = -0.15


def _draw_nuisance(rng: np.random.Generator, cardiomegaly: bool) -> _Nuisance:
    u = rng.random(30)  # one fixed-size draw: the stream never depends on the case
    lo, hi = CTR_ENLARGED if cardiomegaly else CTR_NORMAL
    dome_right = 0.36 + 0.10 * u[7]
    return _Nuisance(
        scale=0.90 + 0.12 * u[0],
        shift=(-0.05 + 0.10 * u[1], -0.04 + 0.09 * u[2]),
        angle=-4.0 + 8.0 * u[3],
        body_w=0.92 + 0.12 * u[4],
        lung_x=0.36 + 0.03 * u[5],
        lung_a=0.33 + 0.04 * u[6],
        apex=-0.84 + 0.08 * u[23],
        dome_right=dome_right,
        dome_left=dome_right + 0.02 + 0.05 * u[8],
        ctr=lo + (hi - lo) * u[9],
        heart_x=0.06 + 0.05 * u[10],
        heart_h=0.40 + 0.20 * u[11],
        rib_spacing=0.13 + 0.03 * u[12],
        rib_phase=float(u[13]),
        rib_curve=0.9 + 0.4 * u[14],
        rib_amp=0.05 + 0.04 * u[15],
        clavicle_y=-0.80 + 0.08 * u[16],
        gastric=float(u[17]),
        lat_scale=0.92 + 0.10 * u[18],
        lat_shift=(-0.05 + 0.10 * u[19], -0.04 + 0.08 * u[20]),
        lat_angle=-4.0 + 8.0 * u[21],
        contrast=0.85 + 0.30 * u[22],
        offset=-0.06 + 0.10 * u[24],
        gamma=0.8 + 0.45 * u[25],
        noise=0.012 + 0.022 * u[26],
        textures=tuple(float(v) for v in rng.random(15)),
    )


def _thoracic_halfwidth(nz: _Nuisance) -> float:
    """Half the inner thoracic width (widest lateral lung borders, at the dome level)."""
    dome = 0.5 * (nz.dome_right + nz.dome_left)
    return nz.lung_x + nz.lung_a * (1.0 + _LUNG_FLARE * (dome - _LUNG_MID))


# Nodule radii in coordinate units (the image is 2 units wide): standard 0.055-0.075 (3.5-4.8 px
# across at 64 px; written out where drawn, for version 1's exact arithmetic), subtle 0.025-0.035
# (1.6-2.2 px across at 64 px, 6.4-9 px at 256 px).
NODULE_R = (0.055, 0.075)
SUBTLE_NODULE_R = (0.025, 0.035)
# A subtle consolidation: its blob cluster shrunk (offsets and widths) and its air loss reduced.
_SUBTLE_SPREAD, _SUBTLE_WIDTH = 0.5, 0.6
_OPACITY_LOSS, _SUBTLE_OPACITY_LOSS = 0.88, 0.30


@dataclass(frozen=True)
class _FindingParams:
    """Shape parameters of every finding, drawn whether or not the finding is present, so that
    toggling one finding leaves all other pixels unchanged."""

    effusion_rise: tuple[float, float]  # fluid top above the dome (patient right, left)
    effusion_lat: float  # lateral-view fluid top above the posterior sulcus
    opacity_jitter: tuple[float, float]
    opacity_blobs: np.ndarray  # (k, 4): dx, dy, sigma, weight
    ptx_collapse: float
    nodule_pos: tuple[float, float]
    nodule_r: float
    nodule_lat_x: float
    # Drawn after all of the above, so that adding them left every standard image unchanged.
    small_effusion_rise: float  # lateral-only effusion: fluid top above the posterior sulcus
    subtle_nodule_r: float
    subtle_ptx_collapse: float


def _draw_findings(rng: np.random.Generator) -> _FindingParams:
    u = rng.random(10)
    k = 7
    blobs = np.column_stack(
        [
            rng.normal(0.0, 0.08, k),
            rng.normal(0.0, 0.07, k),
            0.05 + 0.045 * rng.random(k),
            0.6 + 0.4 * rng.random(k),
        ]
    )
    v = rng.random(3)
    return _FindingParams(
        effusion_rise=(0.14 + 0.20 * u[0], 0.14 + 0.20 * u[1]),
        effusion_lat=0.22 + 0.12 * u[2],
        opacity_jitter=(-0.04 + 0.08 * u[3], -0.05 + 0.10 * u[4]),
        opacity_blobs=blobs,
        ptx_collapse=0.40 + 0.15 * u[5],
        nodule_pos=(0.36 + 0.10 * u[6], -0.20 + 0.18 * u[7]),
        nodule_r=0.055 + 0.02 * u[8],  # NODULE_R
        nodule_lat_x=-0.15 + 0.35 * u[9],
        small_effusion_rise=0.06 + 0.04 * v[0],
        subtle_nodule_r=SUBTLE_NODULE_R[0] + (SUBTLE_NODULE_R[1] - SUBTLE_NODULE_R[0]) * v[1],
        subtle_ptx_collapse=0.05 + 0.03 * v[2],
    )


# --------------------------------------------------------------------------------------------
# Frontal (PA) view


def _frontal(case: PhantomCase, nz: _Nuisance, fp: _FindingParams, tex: dict, size: int) -> np.ndarray:
    """Density image of the frontal view (bright = attenuating), before exposure mapping."""
    fr = _Frame(size, nz.scale, nz.shift, nz.angle)
    x, y = fr.x, fr.y
    ax = np.abs(x)

    # Body: lateral skin edges and sloping shoulders; outside is air (black).
    shoulder = ax * ax
    shoulder *= _F(0.34)
    shoulder += _F(-1.04)
    body = _ramp(_F(nz.body_w) - ax, 0.05)
    body *= _ramp(y - shoulder, 0.05)
    dens = body * _F(0.62)
    dens += _F(0.03)

    # Hemidiaphragm domes: steep towards the costophrenic angle, gentle towards the heart.
    dome = np.empty_like(x)
    for s, top, part in ((-1, nz.dome_right, x < 0), (1, nz.dome_left, x >= 0)):
        d = x - _F(s * (nz.lung_x + 0.02))
        k = np.where(d * _F(s) > 0, _F(1.9), _F(0.6))
        d *= d
        d *= k
        d += _F(top)
        np.copyto(dome, d, where=part)
    below_dome = _ramp(y - dome, 0.03)

    # Mediastinum and heart: one dense central shadow (they merge on a radiograph). The heart
    # sits on the diaphragm, its widest point near the dome level; the patient's left part
    # (image right) is the larger, as on a normal film.
    half = _thoracic_halfwidth(nz)
    width = nz.ctr * 2.0 * half  # CTR = heart width / thoracic width
    hw_r, hw_l = 0.40 * width, 0.60 * width
    hx = nz.heart_x - 0.08
    hy = 0.5 * (nz.dome_right + nz.dome_left) - 0.03
    hh = nz.heart_h
    central = np.zeros_like(x)
    sl = fr.box(hx - hw_r - 0.05, hx + hw_l + 0.05, hy - hh - 0.05, hy + hh + 0.05)
    bx, by = fr.at(sl)
    dxh = bx - _F(hx)
    dxh *= np.where(dxh < 0, _F(1.0 / hw_r), _F(1.0 / hw_l))
    dyh = (by - _F(hy)) * _F(1.0 / hh)
    fh = dxh * dxh
    fh += dyh * dyh
    central[sl] = _ramp((_F(1.0) - fh) * _F(0.5 * hw_r), 0.02)
    sl = fr.box(-0.25, 0.25, -1.2, hy)
    bx, by = fr.at(sl)
    mw = by * _F(-0.02)
    mw += _F(0.12)
    med = _ramp(mw - np.abs(bx - _F(0.01)), 0.015) * _ramp(_F(hy) - by, 0.1)
    np.maximum(central[sl], med, out=central[sl])
    sl = fr.box(0.0, 0.3, -0.5, -0.2)  # aortic knob, on the patient's left
    bx, by = fr.at(sl)
    np.maximum(central[sl], _ellipse(bx, by, 0.10, -0.35, 0.10, 0.09, 0.02), out=central[sl])
    central *= _F(1.0) - below_dome  # the heart sits on the diaphragm
    dens += _F(0.13) * central
    dens += _F(0.11) * below_dome * body  # liver and spleen under the domes

    # Lungs, with every lung finding acting on aeration (air) and markings.
    vessel = tex["vessel"]
    lung_region = {}
    for s, name in ((-1, "right"), (1, "left")):
        cx = s * nz.lung_x
        sl = fr.box(min(0.0, s * 0.9), max(0.0, s * 0.9), nz.apex - 0.05, 0.85)
        bx, by = fr.at(sl)
        flare = np.maximum(by - _F(_LUNG_MID), 0.0)
        flare *= _F(_LUNG_FLARE)
        flare += _F(1.0)
        dx = (bx - _F(cx)) / (_F(nz.lung_a) * flare)
        dy = np.maximum(_F(_LUNG_MID) - by, 0.0) * _F(1.0 / (_LUNG_MID - nz.apex))
        f = dx * dx
        f += dy * dy
        cavity = _ramp((_F(1.0) - f) * _F(0.16), 0.012)  # pleural cavity, open downwards
        above = _ramp(dome[sl] - by, 0.012)
        lung = cavity * above
        lung *= _ramp(_F(s) * bx - _F(0.03), 0.02)
        lung *= _F(1.0) - central[sl]
        aer = np.ones_like(lung)
        marks = np.ones_like(lung)
        fluid = None

        if case.effusion in (name, "bilateral"):
            # Fluid above the dome, meniscus climbing the lateral chest wall.
            top = (nz.dome_right if s < 0 else nz.dome_left) - fp.effusion_rise[0 if s < 0 else 1]
            lat = np.maximum(_F(s) * bx - _F(nz.lung_x - 0.05), 0.0)
            surface = _F(top) - _F(1.3) * lat * lat
            fluid = _ramp(by - surface, 0.04)
            aer *= _F(1.0) - _F(0.97) * fluid
            dens[sl] += _F(0.05) * fluid * lung
        # A retrocardiac consolidation lies behind the heart: nothing of it on this view.
        if case.opacity.startswith(name):
            zone_y = -0.40 if case.opacity.endswith("upper") else 0.10
            cons = _blobs(bx, by, s * (nz.lung_x + 0.03), zone_y, fp, 1.7, case.subtle)
            cons *= np.clip(_F(0.9) + _F(0.2) * tex["patchy"][sl], 0.0, 1.0)
            aer *= _F(1.0) - _F(_SUBTLE_OPACITY_LOSS if case.subtle else _OPACITY_LOSS) * cons
        if case.nodule == name:
            nx, ny = fp.nodule_pos
            r = fp.subtle_nodule_r if case.subtle else fp.nodule_r
            nod = _ellipse(bx, by, s * nx, ny, r, r, 0.012)
            aer *= _F(1.0) - _F(0.95) * nod
        if case.pneumothorax == name:
            # The collapsed lung shrinks towards the hilum and base, leaving a lucent
            # apicolateral rim without markings and a thin visceral pleural edge.
            c = fp.subtle_ptx_collapse if case.subtle else fp.ptx_collapse
            # A subtle one also barely moves medially: its lateral rim stays about 1 px wide at 64 px.
            ccx, ccy = s * (nz.lung_x - (0.015 if case.subtle else 0.06)), 0.25 * c
            kx, ky = 1.0 - 0.55 * c, 1.0 - 0.45 * c
            dxc = (bx - _F(ccx)) / (_F(nz.lung_a * kx) * flare)
            dyc = np.maximum(_F(_LUNG_MID + ccy) - by, 0.0) * _F(1.0 / ((_LUNG_MID - nz.apex) * ky))
            fc = dxc * dxc
            fc += dyc * dyc
            rim = _ramp((fc - _F(1.0)) * _F(0.15), 0.01)
            if fluid is not None:
                rim *= _F(1.0) - fluid  # air rises above any fluid (hydropneumothorax)
            edge = _ramp(_F(0.005) - np.abs((fc - _F(1.0)) * _F(0.15)), 0.006)
            aer = aer * (_F(1.0) - rim) * _F(0.92) + rim * _F(1.45)
            marks *= _F(1.0) - rim
            dens[sl] += _F(0.16) * edge * lung
        dens[sl] -= _F(0.36) * lung * aer

        # Hilum and vessel markings, denser towards the hilum.
        hilar = _gauss(bx, by, s * 0.19, -0.05, 0.2, 0.26)
        mk = vessel[sl] * (_F(0.03) + _F(0.07) * hilar)
        mk *= lung
        mk *= marks
        mk *= np.minimum(aer, 1.0)
        dens[sl] += mk
        dens[sl] += _F(0.07) * _gauss(bx, by, s * 0.2, -0.06, 0.06, 0.09) * lung
        lung_region[s] = (sl, lung * marks, bx, by)

    if case.edema:
        # Bat-wing perihilar haze with interstitial reticulation, both lungs.
        for s, (sl, lung, bx, by) in lung_region.items():
            haze = _gauss(bx, by, s * 0.24, -0.02, 0.2, 0.32)
            ret = tex["reticular"][sl] * (_F(0.4) + haze)
            ret *= _F(0.08)
            ret += _F(0.24) * haze
            ret += _F(0.03)
            dens[sl] += ret * lung

    # Trachea and main bronchi: the air column over the mediastinum.
    sl = fr.box(-0.25, 0.25, -1.2, -0.05)
    bx, by = fr.at(sl)
    air = _ramp(_F(0.038) - np.abs(bx + _F(0.01)), 0.012) * _ramp(_F(-0.30) - by, 0.02)
    for s in (-1, 1):
        bronchus = ((-0.01, -0.31), (s * 0.08, -0.22), (s * 0.17, -0.12))
        air = np.maximum(air, _curve_band(bx, by, bronchus, 0.022))
    dens[sl] -= _F(0.16) * air

    # Spine, faint behind the mediastinum, with disc spaces.
    sl = fr.box(-0.12, 0.12, -1.2, 1.2)
    bx, by = fr.at(sl)
    phase = by * _F(1.0 / 0.105)
    disc = phase - np.floor(phase)
    col = _ramp(_F(0.07) - np.abs(bx), 0.015) * (_F(0.75) + _F(0.25) * (disc > 0.15))
    col *= _F(1.0) - _F(0.6) * below_dome[sl]
    dens[sl] += _F(0.035) * col

    _ribs_frontal(dens, fr, nz, central)

    # Clavicles: S-shaped bars from the sternal notch up and out to the shoulders.
    for s in (-1, 1):
        cy = nz.clavicle_y
        sl = fr.box(min(s * 0.05, s * 0.75), max(s * 0.05, s * 0.75), cy - 0.25, cy + 0.15)
        bx, by = fr.at(sl)
        p2, p1, p0 = _quad_through(0.06, 0.35, 0.72, cy + 0.05, cy - 0.02, cy - 0.14)
        t = np.abs(bx)
        h = (_F(p2) * t + _F(p1)) * t + _F(p0)
        bar = _ramp(_F(0.03) - np.abs(by - h), 0.014)
        bar *= _ramp(t - _F(0.06), 0.03) * _ramp(_F(0.72) - t, 0.04)
        dens[sl] += _F(0.15) * bar

    # Gastric air bubble under the patient's left hemidiaphragm (in most films).
    if nz.gastric < 0.7:
        gy = nz.dome_left + 0.12
        sl = fr.box(0.2, 0.6, gy - 0.1, gy + 0.1)
        bx, by = fr.at(sl)
        dens[sl] -= _F(0.14) * _ellipse(bx, by, 0.38, gy, 0.10, 0.05, 0.02)

    _device_frontal(dens, fr, case.device)
    return dens


def _blobs(x, y, cx, cy, fp: _FindingParams, gain: float, subtle: bool = False) -> np.ndarray:
    """Patchy consolidation: a cluster of Gaussian blobs, saturated to a 0-1 fraction; a subtle one
    is the same cluster drawn tighter and with narrower blobs."""
    cx += fp.opacity_jitter[0]
    cy += fp.opacity_jitter[1]
    spread, width = (_SUBTLE_SPREAD, _SUBTLE_WIDTH) if subtle else (1.0, 1.0)
    acc = np.zeros_like(x)
    for dx, dy, sig, w in fp.opacity_blobs:
        acc += _F(w) * _gauss(x, y, cx + spread * dx, cy + spread * dy, width * sig, width * sig)
    acc *= _F(gain)
    return np.clip(acc, 0.0, 1.0, out=acc)


def _ribs_frontal(dens: np.ndarray, fr: _Frame, nz: _Nuisance, central: np.ndarray) -> None:
    """Posterior ribs (arcs convex upwards) and fainter anterior ribs (sloping down medially),
    drawn as triangle waves over the bony thorax."""
    half = _thoracic_halfwidth(nz) + 0.06
    sl = fr.box(-half - 0.05, half + 0.05, -1.0, 0.75)
    bx, by = fr.at(sl)
    t = np.abs(bx)
    cage = _ellipse(bx, by, 0.0, -0.12, half, 0.86, 0.06) * _ramp(t - _F(0.07), 0.04)
    g = t - _F(0.22)
    g *= g
    g *= _F(nz.rib_curve)
    g -= _F(0.10) * t
    p = (by - g) * _F(1.0 / nz.rib_spacing) + _F(nz.rib_phase)
    p -= np.floor(p)
    # Triangle wave peaking mid-rib; the plateau gives the rib width, the slopes soft margins.
    tri = np.abs(p - _F(0.5))
    rib = np.clip((_F(0.30) - tri) * _F(9.0), 0.0, 1.0)
    pa = (by + _F(0.55) * t) * _F(1.0 / (nz.rib_spacing * 1.25)) + _F(nz.rib_phase * 0.6)
    pa -= np.floor(pa)
    rib_a = np.clip((_F(0.22) - np.abs(pa - _F(0.5))) * _F(9.0), 0.0, 1.0) * _ramp(t - _F(0.22), 0.12)
    rib += _F(0.45) * rib_a
    rib *= cage
    rib *= _F(1.0) - _F(0.75) * central[sl]  # ribs barely show through the mediastinum
    dens[sl] += _F(nz.rib_amp) * rib


def _device_frontal(dens: np.ndarray, fr: _Frame, device: str) -> None:
    if device == "line":
        # Right internal jugular catheter: neck (image left) down to the superior vena cava.
        pts = ((-0.30, -1.10), (-0.13, -0.55), (-0.08, -0.10))
        sl = fr.box(-0.4, 0.0, -1.2, 0.0)
        bx, by = fr.at(sl)
        dens[sl] += _F(0.55) * _curve_band(bx, by, pts, 0.014)
    elif device == "tube":
        # Endotracheal tube in the tracheal air column, tip above the carina.
        sl = fr.box(-0.1, 0.1, -1.2, -0.3)
        bx, by = fr.at(sl)
        end = _ramp(_F(-0.46) - by, 0.01)
        wall = _ramp(_F(0.026) - np.abs(bx + _F(0.01)), 0.006) * end
        stripe = _ramp(_F(0.008) - np.abs(bx), 0.004) * end
        dens[sl] += _F(0.30) * wall + _F(0.45) * stripe
    elif device == "pacemaker":
        # Generator over the patient's left upper chest (image right); leads to RA and RV.
        sl = fr.box(0.35, 0.65, -0.72, -0.48)
        bx, by = fr.at(sl)
        dens[sl] += _F(0.85) * _rounded_box(bx, by, 0.50, -0.60, 0.10, 0.07, 0.035)
        sl = fr.box(-0.15, 0.5, -0.65, 0.45)
        bx, by = fr.at(sl)
        rv = _curve_band(bx, by, ((0.42, -0.56), (0.02, -0.18), (0.22, 0.36)), 0.009)
        ra = _curve_band(bx, by, ((0.40, -0.58), (0.0, -0.25), (-0.05, 0.02)), 0.009)
        dens[sl] += _F(0.55) * np.maximum(rv, ra)


# --------------------------------------------------------------------------------------------
# Lateral view (patient facing image left: sternum left, spine right)


def _lateral(case: PhantomCase, nz: _Nuisance, fp: _FindingParams, tex: dict, size: int) -> np.ndarray:
    fr = _Frame(size, nz.lat_scale, nz.lat_shift, nz.lat_angle)
    x, y = fr.x, fr.y

    body = _ellipse(x, y, 0.06, 0.12, 0.88, 1.30, 0.04)
    dens = body * _F(0.62)
    dens += _F(0.03)
    # Arms and shoulders overlap the upper chest.
    dens += _F(0.10) * _ramp(_F(-0.40) - y, 0.3) * body

    # Heart: anterior and inferior, growing backwards and upwards with the CTR.
    grow = nz.ctr / 0.44
    hx, hy = -0.30 + 0.12 * (grow - 1.0), 0.22 - 0.04 * (grow - 1.0)
    hax, hay = 0.30 * grow, 0.26 * (0.75 + 0.25 * grow)
    heart = np.zeros_like(x)
    sl = fr.box(hx - hax - 0.05, hx + hax + 0.05, hy - hay - 0.05, hy + hay + 0.05)
    bx, by = fr.at(sl)
    heart[sl] = _ellipse(bx, by, hx, hy, hax, hay, 0.02)
    dens += _F(0.03) * heart

    # Both lungs superimposed, between sternum and spine, above the diaphragm whose posterior
    # costophrenic sulcus is the deepest point.
    top = nz.dome_right - 0.02
    sl = lung_sl = fr.box(-0.75, 0.75, nz.apex - 0.1, 1.0)
    bx, by = fr.at(sl)
    env = _ellipse(bx, by, 0.02, -0.04, 0.66, -nz.apex + 0.02, 0.015)
    dome = bx + _F(0.15)
    dome *= dome
    dome *= _F(0.55)
    dome += _F(top)
    lung = env * _ramp(dome - by, 0.012)
    # Lung flanks the heart on both sides of the beam: the heart is grey, not white.
    lung *= _F(1.0) - _F(0.55) * heart[sl]
    aer = np.ones_like(lung)
    if case.effusion == "small":
        # Less than ~200 mL: fluid fills only the deepest, posterior part of the sulcus (the
        # meniscus starts behind the mid-lung), which the frontal view does not show.
        post = np.maximum(bx - _F(0.25), 0.0)
        surface = dome - _F(fp.small_effusion_rise) - _F(1.2) * post * post
        fluid = _ramp(by - surface, 0.03) * _ramp(bx - _F(0.25), 0.06)
        aer *= _F(1.0) - _F(0.92) * fluid
    elif case.effusion != "none":
        # Fluid in the posterior sulcus, meniscus rising posteriorly; more when bilateral.
        rise = fp.effusion_lat + (0.12 if case.effusion == "bilateral" else 0.0)
        post = np.maximum(bx - _F(0.05), 0.0)
        surface = dome - _F(rise) - _F(0.8) * post * post
        fluid = _ramp(by - surface, 0.04)
        aer *= _F(1.0) - _F(0.92) * fluid
    if case.opacity == "retrocardiac":
        # Left lower lobe behind the heart: posterior, over the thoracic spine on this view (the
        # "spine sign"), high enough that a large effusion does not hide it.
        aer *= _F(1.0) - _F(0.75) * _blobs(bx, by, 0.34, 0.0, fp, 1.5)
    elif case.opacity != "none":
        upper = case.opacity.endswith("upper")
        cx, cy = (-0.08, -0.40) if upper else (0.30, 0.16)
        # One lung of the two in the beam path: fainter than on the frontal view.
        loss = 0.6 * (_SUBTLE_OPACITY_LOSS / _OPACITY_LOSS if case.subtle else 1.0)
        aer *= _F(1.0) - _F(loss) * _blobs(bx, by, cx, cy, fp, 1.5, case.subtle)
    if case.nodule != "none":
        r = fp.subtle_nodule_r if case.subtle else fp.nodule_r
        aer *= _F(1.0) - _F(0.7) * _ellipse(bx, by, fp.nodule_lat_x, fp.nodule_pos[1], r, r, 0.012)
    dens[sl] -= _F(0.36) * lung * aer

    hilar = _gauss(bx, by, 0.05, -0.08, 0.26, 0.3)
    mk = tex["vessel_lat"][sl] * (_F(0.025) + _F(0.06) * hilar)
    mk *= lung
    mk *= np.minimum(aer, 1.0)
    dens[sl] += mk
    dens[sl] += _F(0.07) * _gauss(bx, by, 0.05, -0.08, 0.09, 0.11) * lung
    if case.edema:
        haze = _gauss(bx, by, 0.05, -0.05, 0.30, 0.34)
        ret = tex["reticular"][sl] * (_F(0.4) + haze)
        ret *= _F(0.06)
        ret += _F(0.18) * haze
        ret += _F(0.03)
        dens[sl] += ret * lung
    # The other hemidiaphragm a little higher: a faint double contour.
    rise2 = nz.dome_left - nz.dome_right
    dens[sl] += _F(0.05) * _ramp(_F(0.01) - np.abs(by - dome + _F(rise2 + 0.03)), 0.01) * env

    # Trachea: oblique air column down to the hilum.
    sl = fr.box(-0.2, 0.2, -1.2, -0.1)
    bx, by = fr.at(sl)
    dens[sl] -= _F(0.10) * _curve_band(bx, by, ((-0.06, -1.15), (-0.01, -0.6), (0.07, -0.16)), 0.04, 0.02)

    # Spine: vertebral bodies along a gently kyphotic line, posterior elements behind them.
    sl = fr.box(0.3, 1.0, -1.2, 1.2)
    bx, by = fr.at(sl)
    d = bx - (_F(0.60) + _F(0.07) * (_F(1.0) - by * by))
    p = by * _F(1.0 / 0.13) + _F(nz.rib_phase)
    p -= np.floor(p)
    bodies = _ramp(_F(0.10) - np.abs(d), 0.015) * (_F(0.45) + _F(0.55) * (p > 0.18))
    posterior = _ramp(_F(0.07) - np.abs(d - _F(0.19)), 0.04)
    dens[sl] += (_F(0.16) * bodies + _F(0.06) * posterior) * body[sl]

    # Sternum along the anterior chest wall.
    sl = fr.box(-0.9, -0.5, -0.75, 0.25)
    bx, by = fr.at(sl)
    sternum = _ramp(_F(0.025) - np.abs(bx + _F(0.70) - _F(0.06) * by), 0.01)
    sternum *= _ramp(_F(0.45) - np.abs(by + _F(0.25)), 0.03)
    dens[sl] += _F(0.10) * sternum

    # Posterior ribs, crossing obliquely behind the lungs.
    sl = lung_sl
    bx, by = fr.at(sl)
    p = (by + _F(0.35) * bx) * _F(1.0 / nz.rib_spacing) + _F(nz.rib_phase)
    p -= np.floor(p)
    rib = np.clip((_F(0.2) - np.abs(p - _F(0.5))) * _F(9.0), 0.0, 1.0) * _ramp(bx - _F(0.05), 0.3)
    dens[sl] += _F(0.5 * nz.rib_amp) * rib * env

    _device_lateral(dens, fr, case.device)
    return dens


def _device_lateral(dens: np.ndarray, fr: _Frame, device: str) -> None:
    if device == "line":
        sl = fr.box(-0.3, 0.1, -1.2, 0.0)
        bx, by = fr.at(sl)
        dens[sl] += _F(0.5) * _curve_band(bx, by, ((-0.04, -1.10), (-0.12, -0.55), (-0.17, -0.10)), 0.014)
    elif device == "tube":
        sl = fr.box(-0.2, 0.15, -1.2, -0.3)
        bx, by = fr.at(sl)
        dens[sl] += _F(0.45) * _curve_band(bx, by, ((-0.09, -1.10), (-0.04, -0.75), (0.02, -0.44)), 0.022)
    elif device == "pacemaker":
        sl = fr.box(-0.9, -0.6, -0.7, -0.4)
        bx, by = fr.at(sl)
        dens[sl] += _F(0.85) * _rounded_box(bx, by, -0.75, -0.55, 0.05, 0.10, 0.03)
        sl = fr.box(-0.8, -0.1, -0.6, 0.45)
        bx, by = fr.at(sl)
        rv = _curve_band(bx, by, ((-0.71, -0.47), (-0.22, -0.25), (-0.40, 0.34)), 0.009)
        ra = _curve_band(bx, by, ((-0.71, -0.50), (-0.26, -0.30), (-0.23, 0.02)), 0.009)
        dens[sl] += _F(0.5) * np.maximum(rv, ra)


# --------------------------------------------------------------------------------------------
# Exposure and public entry points


def _expose(dens: np.ndarray, nz: _Nuisance, mottle: np.ndarray, white: np.ndarray) -> np.ndarray:
    """Display mapping (contrast, offset, gamma), film mottle and quantum noise, to uint8."""
    v = dens - _F(0.45)
    v *= _F(nz.contrast)
    v += _F(0.45 + nz.offset)
    np.clip(v, 0.0, 1.0, out=v)
    v **= _F(nz.gamma)
    v += _F(nz.noise * 0.7) * mottle
    v += _F(nz.noise) * white
    v *= _F(255.0)
    v += _F(0.5)
    return np.clip(v, 0.0, 255.0, out=v).astype(np.uint8)


def render_study(
    case: PhantomCase, rng: np.random.Generator, size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Render `(frontal, lateral)` uint8 greyscale images of shape (size, size).

    The generator is split into independent streams for the nuisance anatomy and acquisition
    and for the finding shapes, each drawn in full whatever the case, so two cases rendered
    with equal generators differ only in the pixels their differing findings touch.
    """
    if size < 32:
        raise ConfigError(f"phantom image size must be at least 32 px, got {size}")
    seeds = rng.integers(0, 2**63 - 1, size=2)
    nz = _draw_nuisance(np.random.default_rng(int(seeds[0])), case.cardiomegaly)
    fp = _draw_findings(np.random.default_rng(int(seeds[1])))
    bank = _texture_bank(size)
    u = nz.textures
    tex = {
        "vessel": _crop(bank["vessel"], u[0:3], size),
        "vessel_lat": _crop(bank["vessel"], u[3:6], size),
        "reticular": _crop(bank["reticular"], u[6:9], size),
        "patchy": _crop(bank["patchy"], u[9:12], size),
    }
    frontal = _expose(
        _frontal(case, nz, fp, tex, size),
        nz,
        _crop(bank["mottle"], u[12:15], size),
        _crop(bank["white"], u[0:3], size),
    )
    lateral = _expose(
        _lateral(case, nz, fp, tex, size),
        nz,
        _crop(bank["mottle"], u[3:6], size),
        _crop(bank["white"], u[12:15], size),
    )
    return frontal, lateral
