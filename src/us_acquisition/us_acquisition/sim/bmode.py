"""B-mode image formation for a linear probe imaging a label volume.

Probe frame and image convention
--------------------------------
The probe frame has its origin at the centre of the transducer face (mm):

* ``x_p``: along the aperture (lateral); image column ``u`` grows with ``x_p``.
* ``y_p``: along the beams (depth); image row ``v`` grows with ``y_p``.
* ``z_p = x_p x y_p``: elevation (out of the image plane).

A pixel ``(u, v)`` of the image region (0-based column, row, relative to the ROI origin) has
its centre at probe coordinates::

    x_p = (u + 0.5 - w / 2) * sx,    y_p = (v + 0.5) * sy,    z_p = 0

with ``(sx, sy) = SimFrame.pixel_spacing_mm`` and ``w`` the ROI width.  In screen mode, subtract
the ROI origin ``(roi_x, roi_y)`` from screen pixel coordinates first
(:meth:`BModeSimulator.T_probe_image` gives this as a 4x4 matrix).

``T_phantom_probe`` (4x4, mm) maps probe coordinates to phantom coordinates:
``p_phantom = T_phantom_probe @ [x_p, y_p, z_p, 1]``.

Model
-----
Per pixel the tissue label is sampled from the volume (nearest voxel).  Scatterers are complex
numbers, uniform in [-1, 1] for both real and imaginary parts, given by a hash of the pixel's
position on a fixed 3D lattice in the phantom frame (so speckle moves with the anatomy and is
identical for identical poses), scaled by the tissue echogenicity.  Specular echoes are added at
tissue interfaces along each beam.  The scatterer map is convolved with a separable Gaussian PSF
(axial and lateral widths from the centre frequency), giving a circular complex Gaussian field
whose magnitude is Rayleigh distributed.  Depth-dependent attenuation is the cumulative sum of
the per-tissue attenuation down each column (round trip), which also produces acoustic shadows
behind strongly attenuating structures (air, bone, calcifications) and enhancement behind
fluid; time-gain compensation removes the attenuation of a reference soft tissue.  Finally the
intensity is log compressed to uint8.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from .kernels import correlate_cols, correlate_rows, cumsum_rows_exclusive
from .kernels import warmup as _warmup_kernels
from .phantom import Tissue

__all__ = [
    "TISSUE_ACOUSTICS",
    "BModeParams",
    "BModeSimulator",
    "LabelVolume",
    "SimFrame",
    "TissueAcoustics",
]


class LabelVolume(Protocol):
    """Anything with a uint8 label volume ``[ix, iy, iz]``, voxel size and voxel-0 centre (mm)."""

    labels: NDArray[np.uint8]
    spacing_mm: float
    origin_mm: NDArray[np.float64]


@dataclass(frozen=True)
class TissueAcoustics:
    """Acoustic properties of one tissue class.

    Attributes:
        echo_db: backscatter amplitude relative to thyroid parenchyma (dB, 20 log10).
        attenuation_db_cm_mhz: attenuation coefficient (dB / cm / MHz, one way).
        interface: strength of the specular echo at a boundary with this tissue (scatterer rms
            units; the larger value of the two tissues is used).
    """

    echo_db: float
    attenuation_db_cm_mhz: float
    interface: float


#: Default acoustic table (values are plausible, tuned for appearance, not measured).
TISSUE_ACOUSTICS: dict[int, TissueAcoustics] = {
    Tissue.BACKGROUND: TissueAcoustics(-8.0, 0.6, 0.4),
    Tissue.THYROID: TissueAcoustics(0.0, 0.6, 0.9),
    Tissue.SKIN: TissueAcoustics(6.0, 0.8, 1.2),
    Tissue.FAT: TissueAcoustics(-13.0, 0.5, 0.5),
    Tissue.STRAP_MUSCLE: TissueAcoustics(-10.0, 0.8, 0.7),
    Tissue.SCM: TissueAcoustics(-10.0, 0.8, 0.7),
    Tissue.CAROTID: TissueAcoustics(-50.0, 0.15, 2.5),
    Tissue.JUGULAR: TissueAcoustics(-50.0, 0.15, 1.2),
    Tissue.TRACHEA_WALL: TissueAcoustics(-14.0, 2.0, 1.0),
    Tissue.AIR: TissueAcoustics(-80.0, 300.0, 14.0),
    Tissue.ESOPHAGUS: TissueAcoustics(-6.0, 0.8, 1.0),
    Tissue.DEEP_MUSCLE: TissueAcoustics(-10.0, 0.8, 0.7),
    Tissue.BONE: TissueAcoustics(2.0, 40.0, 10.0),
    Tissue.NODULE_HYPO: TissueAcoustics(-11.0, 0.6, 0.8),
    Tissue.NODULE_ISO: TissueAcoustics(-1.5, 0.6, 1.6),
    Tissue.NODULE_HYPER: TissueAcoustics(5.0, 0.7, 0.6),
    Tissue.CALCIFICATION: TissueAcoustics(14.0, 40.0, 8.0),
    Tissue.GEL: TissueAcoustics(-80.0, 0.02, 0.0),
}


@dataclass(frozen=True)
class BModeParams:
    """Linear probe and display parameters.

    Attributes:
        aperture_width_mm: lateral field of view (mm).
        depth_mm: imaging depth (mm).
        center_frequency_mhz: transmit centre frequency (MHz); sets the PSF and attenuation.
        width_px, height_px: image size in the default (non-screen) mode.
        lateral_fnumber: lateral PSF FWHM = ``lateral_fnumber * wavelength``.
        axial_fwhm_wavelengths: axial PSF FWHM in wavelengths.
        sound_speed_m_s: speed of sound (m/s).
        tgc_alpha_db_cm_mhz: attenuation the TGC compensates (dB/cm/MHz); ``0`` disables TGC.
        gain_db: overall gain (dB).
        dynamic_range_db: displayed dynamic range (dB); 0 dB (mean thyroid) maps to grey 128.
        scatterer_spacing_mm: pitch of the 3D scatterer lattice (default: finest pixel pitch).
        screen: render a 1920x1080 scanner screen with UI chrome around the image region.
        screen_size_px: ``(width, height)`` of the screen.
        screen_roi_height_px: height of the image region on the screen (width follows the
            aspect ratio ``aperture_width_mm / depth_mm``).
        noise_floor_db: mean electronic noise level (dB re mean thyroid intensity); the
            displayed level is ``max(echo, noise)``, so shadows show noise instead of black.
        reverberation: draw reverberation replicas of the air interface (trachea) at 2x, 3x
            and 4x its depth.
        display_smoothing: 3x3 binomial smoothing of the intensity before log compression
            (scanner "video filter"; the returned envelope is not smoothed).
    """

    aperture_width_mm: float = 50.0
    depth_mm: float = 40.0
    center_frequency_mhz: float = 10.0
    width_px: int = 640
    height_px: int = 480
    lateral_fnumber: float = 3.5
    axial_fwhm_wavelengths: float = 2.0
    sound_speed_m_s: float = 1540.0
    tgc_alpha_db_cm_mhz: float = 0.6
    gain_db: float = 0.0
    dynamic_range_db: float = 60.0
    scatterer_spacing_mm: float | None = None
    screen: bool = False
    screen_size_px: tuple[int, int] = (1920, 1080)
    screen_roi_height_px: int = 800
    noise_floor_db: float = -30.0
    reverberation: bool = True
    display_smoothing: bool = True

    @property
    def wavelength_mm(self) -> float:
        """Wavelength at the centre frequency (mm)."""
        return self.sound_speed_m_s / (self.center_frequency_mhz * 1e3)

    @property
    def lateral_fwhm_mm(self) -> float:
        """Lateral PSF full width at half maximum (mm)."""
        return self.lateral_fnumber * self.wavelength_mm

    @property
    def axial_fwhm_mm(self) -> float:
        """Axial PSF full width at half maximum (mm)."""
        return self.axial_fwhm_wavelengths * self.wavelength_mm


@dataclass
class SimFrame:
    """One simulated frame.

    Attributes:
        image: ``uint8 (H, W)`` B-mode image (the full screen in screen mode).
        labels: ``uint8 (H, W)`` :class:`Tissue` labels aligned pixel by pixel with ``image``
            (``Tissue.OUTSIDE`` outside the image region).
        pixel_spacing_mm: ``(sx, sy)`` mm per pixel along ``u`` (lateral) and ``v`` (depth).
        roi: ``(x, y, w, h)`` pixels: the image region inside ``image``.
        T_phantom_probe: ``float64 (4, 4)`` pose that was imaged (probe -> phantom, mm).
        envelope: optional ``float32 (h, w)`` linear envelope of the image region (after
            attenuation and TGC, before log compression; 1.0 ~ mean thyroid intensity).
    """

    image: NDArray[np.uint8]
    labels: NDArray[np.uint8]
    pixel_spacing_mm: tuple[float, float]
    roi: tuple[int, int, int, int]
    T_phantom_probe: NDArray[np.float64]
    envelope: NDArray[np.float32] | None = None


def _gaussian_kernel(fwhm_px: float, truncate: float = 2.5) -> NDArray[np.float32]:
    """Unit-energy sampled Gaussian with the given FWHM (pixels), cut at ``truncate`` sigma."""
    sigma = max(fwhm_px / (2.0 * math.sqrt(2.0 * math.log(2.0))), 0.3)
    half = max(1, math.ceil(truncate * sigma))
    x = np.arange(-half, half + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return (k / np.sqrt((k**2).sum())).astype(np.float32)  # unit energy


_HASH_OFFSET = 4096.0  # keeps lattice coordinates positive so truncation == floor


class BModeSimulator:
    """Render B-mode frames of a :class:`LabelVolume` at probe poses.

    The instance keeps preallocated work buffers; use one simulator per thread.

    Args:
        volume: the phantom (e.g. :class:`~.phantom.NeckPhantom`).
        params: probe / display parameters.
        seed: speckle seed (scatterer lattice hash).
        acoustics: per-tissue properties (defaults to :data:`TISSUE_ACOUSTICS`).
    """

    def __init__(
        self,
        volume: LabelVolume,
        params: BModeParams | None = None,
        seed: int = 0,
        acoustics: dict[int, TissueAcoustics] | None = None,
    ) -> None:
        self.volume = volume
        self.params = p = params if params is not None else BModeParams()
        self.seed = int(seed)
        acoustics = TISSUE_ACOUSTICS if acoustics is None else acoustics

        # Geometry of the image region.
        if p.screen:
            h = int(p.screen_roi_height_px)
            w = round(h * p.aperture_width_mm / p.depth_mm)
            sw, sh = p.screen_size_px
            if w > sw - 200 or h > sh - 80:
                raise ValueError("screen ROI does not fit on the screen")
            x0 = (sw - w) // 2
            y0 = max(60, (sh - h) // 2)
            self.roi = (x0, y0, w, h)
            self.screen_shape = (sh, sw)
        else:
            w, h = int(p.width_px), int(p.height_px)
            self.roi = (0, 0, w, h)
            self.screen_shape = (h, w)
        self.shape = (h, w)
        self.sx = p.aperture_width_mm / w
        self.sy = p.depth_mm / h
        self.u_mm = ((np.arange(w) + 0.5 - w / 2.0) * self.sx).astype(np.float64)
        self.v_mm = ((np.arange(h) + 0.5) * self.sy).astype(np.float64)
        self.g = float(p.scatterer_spacing_mm or min(self.sx, self.sy))

        # PSF kernels (unit energy each) scaled so that unit-amplitude scatterers, uniform in
        # [-1, 1] for re and im (E|s|^2 = 2/3), give E[I] = 1 after convolution.
        self.k_ax = _gaussian_kernel(p.axial_fwhm_mm / self.sy) * np.float32(math.sqrt(1.5))
        self.k_lat = _gaussian_kernel(p.lateral_fwhm_mm / self.sx)
        # beam-width blur of the attenuation map (unit sum) -> soft shadow edges
        k_att = _gaussian_kernel(p.lateral_fwhm_mm / self.sx, truncate=1.2) ** 2
        self._k_att = (k_att / k_att.sum()).astype(np.float32)
        self._k_smooth = np.array([0.25, 0.5, 0.25], np.float32)

        # Look-up tables by label.
        amp = np.zeros(256, np.float32)
        att = np.zeros(256, np.float32)
        itf = np.zeros(256, np.float32)
        for lab, ac in acoustics.items():
            amp[int(lab)] = 10.0 ** (ac.echo_db / 20.0)
            # dB of round-trip loss per image row
            att[int(lab)] = 2.0 * ac.attenuation_db_cm_mhz * p.center_frequency_mhz * self.sy / 10
            itf[int(lab)] = ac.interface
        self._amp_lut = amp / np.float32(32768.0)  # hash values are in [0, 65535]
        self._att_lut = att
        self._itf_lut = itf
        depth_cm = self.v_mm / 10.0
        self._tgc_db = (
            2.0 * p.tgc_alpha_db_cm_mhz * p.center_frequency_mhz * (depth_cm - self.sy / 20)
            + p.gain_db
        ).astype(np.float32)[:, None]
        self._grey_scale = np.float32(255.0 / p.dynamic_range_db)

        vol_labels = volume.labels
        if vol_labels.dtype != np.uint8 or vol_labels.ndim != 3:
            raise ValueError("labels must be a 3D uint8 array")
        self._vol_flat = np.ascontiguousarray(vol_labels).reshape(-1)
        self._vol_shape = vol_labels.shape
        self._origin = np.asarray(volume.origin_mm, dtype=np.float64)
        self._vs = float(volume.spacing_mm)
        if self._vol_flat.size >= 2**31:
            raise ValueError("label volume too large for int32 indexing")

        # Work buffers.
        self._f = np.empty((h, w), np.float32)
        self._i = [np.empty((h, w), np.int32) for _ in range(3)]
        self._q = [np.empty((h, w), np.uint32) for _ in range(3)]
        self._ri = np.empty((2, h, w), np.float32)
        self._ri2 = np.empty((2, h, w), np.float32)
        self._hseed = np.uint32((self.seed * 0x9E3779B1 + 0x85EBCA6B) & 0xFFFFFFFF)
        # Electronic noise floor: band-limited complex Gaussian noise (same PSF as the echoes)
        # in dB; a per-pose column shift varies it from frame to frame.
        nrng = np.random.default_rng(np.random.SeedSequence([self.seed, 0x0015E]))
        self._noise_pad = 97
        nz = nrng.normal(size=(2, h, w + self._noise_pad)).astype(np.float32)
        nz = ndimage.correlate1d(nz, self.k_ax / np.float32(math.sqrt(1.5)), axis=1, mode="wrap")
        nz = ndimage.correlate1d(nz, self.k_lat, axis=2, mode="wrap")
        noise_pow = 0.5 * (nz[0] ** 2 + nz[1] ** 2)
        self._noise_db = (10.0 * np.log10(noise_pow + 1e-6) + p.noise_floor_db).astype(np.float32)
        self._chrome: NDArray[np.uint8] | None = None
        _warmup_kernels()  # compiled (or loaded) now, not in the first frame
        if p.screen:
            self._chrome = self._make_chrome()

    # ------------------------------------------------------------------ conventions
    @property
    def pixel_spacing_mm(self) -> tuple[float, float]:
        """``(sx, sy)``: mm per pixel along image columns (lateral) and rows (depth)."""
        return (self.sx, self.sy)

    def T_probe_image(self) -> NDArray[np.float64]:
        """4x4 matrix mapping homogeneous pixel coords ``(u, v, 0, 1)`` to probe coords (mm).

        ``(u, v)`` are column/row of the full output image (screen pixels in screen mode); the
        ROI offset is included.  Pixel centres are at integer ``(u, v)``.
        """
        x0, y0, w, _ = self.roi
        T = np.eye(4)
        T[0, 0] = self.sx
        T[0, 3] = (0.5 - x0 - w / 2.0) * self.sx
        T[1, 1] = self.sy
        T[1, 3] = (0.5 - y0) * self.sy
        return T

    # ----------------------------------------------------------------------- rendering
    def sample_labels(self, T_phantom_probe: NDArray[np.float64]) -> NDArray[np.uint8]:
        """Label image ``uint8 (h, w)`` of the image region at a pose (nearest voxel)."""
        self._coords(np.asarray(T_phantom_probe, dtype=np.float64))
        return self._gather_labels()

    def _coords(self, T: NDArray[np.float64]) -> None:
        """Fill ``self._q`` (scatterer lattice coords) and ``self._i`` (voxel indices)."""
        R = T[:3, :3]
        t = T[:3, 3]
        f = self._f
        inv_g = 1.0 / self.g
        inv_s = 1.0 / self._vs
        for i in range(3):
            row = t[i] + R[i, 0] * self.u_mm  # (w,)
            col = R[i, 1] * self.v_mm  # (h,)
            # scatterer lattice (positive by construction, so astype truncation == floor)
            np.add(
                (col * inv_g)[:, None].astype(np.float32),
                (row * inv_g + _HASH_OFFSET).astype(np.float32)[None, :],
                out=f,
            )
            np.copyto(self._q[i], f, casting="unsafe")
            # voxel index = floor((p - origin) / s + 0.5), clipped
            np.add(
                (col * inv_s)[:, None].astype(np.float32),
                ((row - self._origin[i]) * inv_s + 0.5).astype(np.float32)[None, :],
                out=f,
            )
            np.clip(f, 0.0, float(self._vol_shape[i] - 1), out=f)
            np.copyto(self._i[i], f, casting="unsafe")

    def _gather_labels(self) -> NDArray[np.uint8]:
        ix, iy, iz = self._i
        _, ny, nz = self._vol_shape
        flat = ix
        flat *= np.int32(ny)
        flat += iy
        flat *= np.int32(nz)
        flat += iz
        return np.take(self._vol_flat, flat)

    def render(
        self, T_phantom_probe: NDArray[np.float64], return_envelope: bool = False
    ) -> SimFrame:
        """Simulate one frame at pose ``T_phantom_probe`` (4x4, probe -> phantom, mm).

        Deterministic: the same simulator, seed and pose give the same image.
        """
        T = np.asarray(T_phantom_probe, dtype=np.float64)
        self._coords(T)
        labels = self._gather_labels()

        # Scatterers: hash of the lattice coordinates -> two 16-bit uniforms.
        qx, qy, qz = self._q
        hsh = qx
        hsh *= np.uint32(0x8DA6B343)
        qy *= np.uint32(0xD8163841)
        hsh ^= qy
        qz *= np.uint32(0xCB1AB31F)
        hsh ^= qz
        hsh ^= self._hseed
        hsh ^= hsh >> np.uint32(16)
        hsh *= np.uint32(0x7FEB352D)
        hsh ^= hsh >> np.uint32(15)
        hsh *= np.uint32(0x846CA68B)
        hsh ^= hsh >> np.uint32(16)
        ri = self._ri
        re, im = ri[0], ri[1]
        np.bitwise_and(hsh, np.uint32(0xFFFF), out=qy)
        np.copyto(re, qy, casting="unsafe")
        np.right_shift(hsh, np.uint32(16), out=qy)
        np.copyto(im, qy, casting="unsafe")
        ri -= np.float32(32767.5)
        amp = np.take(self._amp_lut, labels)
        ri *= amp[None]

        # Specular echoes at interfaces along each beam (real, i.e. coherent).
        up, dn = labels[:-1], labels[1:]
        edge = up != dn
        if edge.any():
            s_itf = np.maximum(np.take(self._itf_lut, up), np.take(self._itf_lut, dn))
            s_itf *= edge
            re[1:] += s_itf

        # PSF: separable convolution (axial along rows, lateral along columns).
        for c in (0, 1):
            correlate_rows(ri[c], self.k_ax, self._ri2[c])
            correlate_cols(self._ri2[c], self.k_lat, ri[c])
        inten = self._f
        np.multiply(re, re, out=inten)
        inten += im * im
        inten += np.float32(1e-12)

        # Attenuation (exclusive cumulative sum down each column) and TGC, in dB.
        att = np.take(self._att_lut, labels)
        correlate_cols(att, self._k_att, att)
        cum = self._ri2[0]
        cumsum_rows_exclusive(att, cum)
        db = self._ri2[1]
        raw_db: NDArray[np.float32] | None = None
        if return_envelope:
            raw_db = np.log10(inten) * np.float32(10.0) - cum + self._tgc_db
        if self.params.display_smoothing:
            correlate_rows(inten, self._k_smooth, db)
            correlate_cols(db, self._k_smooth, inten)
        np.log10(inten, out=db)
        db *= np.float32(10.0)
        db -= cum
        db += self._tgc_db

        if self.params.reverberation:
            self._add_reverberation(labels, db)
        k = zlib.crc32(T.tobytes()) % self._noise_pad
        w = self.shape[1]
        np.maximum(db, self._noise_db[:, k : k + w], out=db)

        envelope: NDArray[np.float32] | None = None
        if raw_db is not None:
            envelope = np.power(np.float32(10.0), raw_db / np.float32(20.0)).astype(np.float32)

        db *= self._grey_scale
        db += np.float32(128.0)
        np.clip(db, 0.0, 255.0, out=db)
        img = db.astype(np.uint8)

        if self.params.screen:
            assert self._chrome is not None
            x0, y0, w, h = self.roi
            screen = self._chrome.copy()
            screen[y0 : y0 + h, x0 : x0 + w] = img
            lab_full = np.full(self.screen_shape, Tissue.OUTSIDE, np.uint8)
            lab_full[y0 : y0 + h, x0 : x0 + w] = labels
            img, labels = screen, lab_full
        return SimFrame(img, labels, (self.sx, self.sy), self.roi, T.copy(), envelope)

    def _add_reverberation(self, labels: NDArray[np.uint8], db: NDArray[np.float32]) -> None:
        """Replicas of the first air interface of each column at 2x, 3x, 4x its depth (dB)."""
        air = labels == Tissue.AIR
        first = air.argmax(axis=0)
        cols = np.nonzero(first > 0)[0]
        if cols.size == 0:
            return
        ra = first[cols]
        # only where the interface is roughly perpendicular to the beams (specular return)
        flat = np.abs(np.gradient(ra.astype(np.float32))) <= 1.0
        cols, ra = cols[flat], ra[flat]
        h = self.shape[0]
        thick = max(1, round(0.25 / self.sy))
        for k, level_db in ((2, 8.0), (3, 2.0), (4, -6.0)):
            for j in range(-thick, thick + k):
                rows = k * ra + j
                ok = rows < h
                if not ok.any():
                    continue
                r, c = rows[ok], cols[ok]
                val = (
                    level_db
                    - 6.0 * abs(j) / thick
                    + self._noise_db[r, c]
                    - self.params.noise_floor_db
                )
                db[r, c] = np.maximum(db[r, c], val)

    # ------------------------------------------------------------------------- chrome
    def _make_chrome(self) -> NDArray[np.uint8]:
        """Static 'scanner screen' UI around the image region (uint8, screen shape)."""
        sh, sw = self.screen_shape
        x0, y0, w, h = self.roi
        rng = np.random.default_rng(1234)
        scr = np.full((sh, sw), 14, np.uint8)
        scr[:48, :] = 34  # header bar
        scr[sh - 56 :, :] = 26  # footer bar
        scr[48:50, :] = 70

        def text(x: int, y: int, n_words: int, hgt: int = 12, val: int = 200) -> None:
            cx = x
            for _ in range(n_words):
                for _ in range(int(rng.integers(2, 8))):  # "letters"
                    lw = int(rng.integers(5, 9))
                    scr[y : y + hgt, cx : cx + lw] = val
                    scr[y + 2 : y + hgt - 2, cx + 2 : cx + lw - 2] = scr[y, 0]
                    cx += lw + 2
                cx += 8

        text(20, 18, 3, 14, 220)  # institution / patient
        text(sw // 2 - 120, 18, 2, 14, 180)
        text(sw - 360, 18, 3, 14, 200)  # date / time
        # left panel: parameter boxes
        for k in range(6):
            yy = 110 + 95 * k
            scr[yy : yy + 80, 30:300] = 30
            scr[yy : yy + 2, 30:300] = 90
            scr[yy + 78 : yy + 80, 30:300] = 90
            scr[yy : yy + 80, 30:32] = 90
            scr[yy : yy + 80, 298:300] = 90
            text(45, yy + 15, 2, 12, 190)
            text(45, yy + 45, 1, 16, 235)
        # right panel: grey bar and TGC sliders
        gx = min(x0 + w + 90, sw - 60)
        bar = np.linspace(255, 0, 256).astype(np.uint8)
        scr[y0 : y0 + 256, gx : gx + 16] = bar[:, None]
        for k in range(8):
            yy = y0 + 300 + 40 * k
            if yy + 6 > sh - 60:
                break
            scr[yy + 2 : yy + 4, gx - 20 : gx + 60] = 60
            off = int(rng.integers(-10, 20))
            scr[yy : yy + 6, gx + 20 + off : gx + 30 + off] = 200
        # depth scale right of the image: tick every 5 mm, long tick + dot every 10 mm
        p = self.params
        sx_col = x0 + w + 8
        for d in range(int(p.depth_mm) + 1):
            yy = y0 + round(d / self.sy)
            if yy >= y0 + h:
                yy = y0 + h - 1
            if d % 10 == 0:
                scr[yy - 1 : yy + 2, sx_col : sx_col + 18] = 220
                text(sx_col + 24, yy - 6, 1, 12, 200)
            elif d % 5 == 0:
                scr[yy : yy + 2, sx_col : sx_col + 10] = 180
        scr[y0 : y0 + h, sx_col : sx_col + 1] = 120
        # focus marker (triangle) at 2/3 of the depth, left of the image
        fy = y0 + int(2 * h / 3)
        for k in range(8):
            scr[fy - k : fy + k + 1, x0 - 20 + k] = 230
        # orientation marker top-left of the image
        scr[y0 + 10 : y0 + 30, x0 - 30 : x0 - 14] = 210
        # footer thumbnails
        for k in range(8):
            xx = 340 + 150 * k
            scr[sh - 48 : sh - 10, xx : xx + 130] = 50
        return scr
