"""Image and volume codecs of the bridge (no rclpy, no gRPC).

Frames leave the bridge as one of:

* ``raw``  - the pixels, rows packed (stride = width x bytes per pixel);
* ``jpeg`` - lossy, quality 1..100; 8-bit grey (mono8, label8, UYVY luma, mono16 >> 8) or
  colour (bgr8/bgra8 as RGB);
* ``png``  - lossless; 8/16-bit grey or colour (bgra8 keeps alpha);
* ``zstd`` / ``lz4`` - lossless compression of the raw bytes (every pixel format).

Downscaling by an integer factor averages ``f x f`` blocks of grey/colour frames and picks
every ``f``-th pixel of label masks (averaging class ids would invent classes).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from us_frame_channel import PixelFormat

ENCODINGS = ("raw", "jpeg", "png", "zstd", "lz4")
#: Encodings allowed for label masks (lossy JPEG would corrupt class ids).
MASK_ENCODINGS = ("raw", "png", "zstd", "lz4")
DEFAULT_JPEG_QUALITY = 85
ZSTD_LEVEL = 1  # fast: 1080p mono8 in a few ms on one core
VOLUME_ZSTD_LEVEL = 3


class CodecError(ValueError):
    """A request the codecs cannot serve (bad encoding, quality, factor)."""


@dataclass(frozen=True)
class EncodeSpec:
    """How one client wants its images: encoding, JPEG quality (1..100), downscale factor."""

    encoding: str = "raw"
    jpeg_quality: int = DEFAULT_JPEG_QUALITY
    downscale: int = 1

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise CodecError(f"unknown encoding {self.encoding!r}; known: {', '.join(ENCODINGS)}")
        if not 1 <= self.jpeg_quality <= 100:
            raise CodecError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        if not 1 <= self.downscale <= 64:
            raise CodecError(f"downscale must be in 1..64, got {self.downscale}")


@dataclass(frozen=True)
class EncodedImage:
    """An encoded image; ``width``/``height`` (px) and ``pixel_format`` of the decoded pixels."""

    data: bytes
    width: int
    height: int
    pixel_format: PixelFormat
    encoding: str
    stride_bytes: int
    raw_bytes: int
    downscale: int


def downscale(image: npt.NDArray[Any], factor: int, *, labels: bool = False) -> npt.NDArray[Any]:
    """``(H, W[, C])`` -> ``(H // f, W // f[, C])``: block mean (grey/colour) or decimation
    (labels, UYVY pairs). Returns the input unchanged for ``factor == 1``."""
    if factor == 1:
        return image
    h, w = image.shape[0] // factor, image.shape[1] // factor
    if h < 1 or w < 1:
        raise CodecError(
            f"downscale {factor} leaves no pixel of a {image.shape[1]}x{image.shape[0]} image"
        )
    if labels:
        return np.ascontiguousarray(image[: h * factor : factor, : w * factor : factor])
    crop = image[: h * factor, : w * factor]
    if image.ndim == 2:
        blocks = crop.reshape(h, factor, w, factor)
        out = blocks.mean(axis=(1, 3), dtype=np.float32)
    else:
        blocks = crop.reshape(h, factor, w, factor, image.shape[2])
        out = blocks.mean(axis=(1, 3), dtype=np.float32)
    if image.dtype.kind == "f":
        return out.astype(image.dtype)
    return np.rint(out).astype(image.dtype)


def _uyvy_luma(image: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """Luma plane ``(H, W) uint8`` of a UYVY ``(H, W, 2)`` frame (Y is byte 1 of each pixel)."""
    return np.ascontiguousarray(image[..., 1])


def prepare(
    image: npt.NDArray[Any], fmt: PixelFormat, spec: EncodeSpec
) -> tuple[npt.NDArray[Any], PixelFormat]:
    """The pixels to encode and their format after downscaling and colour handling."""
    labels = fmt is PixelFormat.LABEL8
    if fmt is PixelFormat.UYVY and (spec.encoding in ("jpeg", "png") or spec.downscale > 1):
        image, fmt = _uyvy_luma(image), PixelFormat.MONO8  # 4:2:2 chroma does not downscale
    image = downscale(image, spec.downscale, labels=labels)
    return image, fmt


def _pil_image(pixels: npt.NDArray[Any], fmt: PixelFormat, encoding: str) -> Any:
    from PIL import Image

    if fmt in (PixelFormat.MONO8, PixelFormat.LABEL8):
        return Image.fromarray(np.ascontiguousarray(pixels))
    if fmt is PixelFormat.MONO16:
        if encoding == "jpeg":
            return Image.fromarray(np.ascontiguousarray(pixels >> 8).astype(np.uint8))
        return Image.fromarray(np.ascontiguousarray(pixels).astype("<u2"))
    if fmt is PixelFormat.BGR8:
        return Image.fromarray(np.ascontiguousarray(pixels[..., ::-1]))
    if fmt is PixelFormat.BGRA8:
        if encoding == "jpeg":
            return Image.fromarray(np.ascontiguousarray(pixels[..., 2::-1]))
        return Image.fromarray(np.ascontiguousarray(pixels[..., [2, 1, 0, 3]]))
    raise CodecError(f"{fmt.label} frames cannot be sent as {encoding}; use raw, zstd or lz4")


def decoded_format(fmt: PixelFormat, encoding: str) -> PixelFormat:
    """Pixel format a client gets after decoding ``encoding`` of a ``fmt`` image."""
    if encoding == "jpeg":
        if fmt in (PixelFormat.BGR8, PixelFormat.BGRA8):
            return PixelFormat.BGR8
        return PixelFormat.LABEL8 if fmt is PixelFormat.LABEL8 else PixelFormat.MONO8
    if encoding == "png" and fmt is PixelFormat.UYVY:
        return PixelFormat.MONO8
    return fmt


def encode(image: npt.NDArray[Any], fmt: PixelFormat, spec: EncodeSpec) -> EncodedImage:
    """Encode ``image`` (``(H, W[, C])`` of ``fmt``) per ``spec``; the input is not modified."""
    pixels, fmt = prepare(image, fmt, spec)
    h, w = int(pixels.shape[0]), int(pixels.shape[1])
    contiguous = np.ascontiguousarray(pixels)
    stride = int(contiguous.strides[0])
    raw_bytes = int(contiguous.nbytes)
    if spec.encoding == "raw":
        data = contiguous.tobytes()
    elif spec.encoding == "zstd":
        import zstandard

        data = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(contiguous.data)
    elif spec.encoding == "lz4":
        import lz4.frame

        data = lz4.frame.compress(contiguous.data)
    else:
        img = _pil_image(contiguous, fmt, spec.encoding)
        buf = io.BytesIO()
        if spec.encoding == "jpeg":
            img.save(buf, format="JPEG", quality=spec.jpeg_quality)
        else:
            img.save(buf, format="PNG", compress_level=1)
        data = buf.getvalue()
        fmt = decoded_format(fmt, spec.encoding)
        if fmt is PixelFormat.BGR8 and img.mode == "RGB":
            stride = w * 3
    return EncodedImage(data, w, h, fmt, spec.encoding, stride, raw_bytes, spec.downscale)


def decode(
    data: bytes, encoding: str, width: int, height: int, fmt: PixelFormat
) -> npt.NDArray[Any]:
    """Inverse of :func:`encode` for clients: ``(H, W[, C])`` array of ``fmt``.

    JPEG/PNG colour images come back as BGR(A) like the channel's formats.
    """
    from us_frame_channel.layout import PIXEL_LAYOUTS, array_shape

    if encoding in ("jpeg", "png"):
        from PIL import Image

        img = Image.open(io.BytesIO(data))
        arr = np.asarray(img)
        if arr.ndim == 3 and arr.shape[2] == 3:
            arr = arr[..., ::-1]
        elif arr.ndim == 3 and arr.shape[2] == 4:
            arr = arr[..., [2, 1, 0, 3]]
        return np.ascontiguousarray(arr)
    if encoding == "zstd":
        import zstandard

        raw = zstandard.ZstdDecompressor().decompress(data)
    elif encoding == "lz4":
        import lz4.frame

        raw = lz4.frame.decompress(data)
    elif encoding == "raw":
        raw = data
    else:
        raise CodecError(f"unknown encoding {encoding!r}")
    layout = PIXEL_LAYOUTS[fmt]
    return np.frombuffer(raw, dtype=layout.dtype).reshape(array_shape(fmt, width, height))


def compress_volume(voxels: bytes | npt.NDArray[Any]) -> bytes:
    """zstd of a volume's voxel bytes (level 3)."""
    import zstandard

    return zstandard.ZstdCompressor(level=VOLUME_ZSTD_LEVEL).compress(
        voxels if isinstance(voxels, bytes) else np.ascontiguousarray(voxels).tobytes()
    )


def decompress_volume(data: bytes, nbytes: int) -> bytes:
    """Inverse of :func:`compress_volume`; ``nbytes`` is the expected size."""
    import zstandard

    return zstandard.ZstdDecompressor().decompress(data, max_output_size=max(nbytes, 1))


def downsample_volume(
    voxels: npt.NDArray[Any], dims: tuple[int, int, int], factor: int
) -> tuple[npt.NDArray[Any], tuple[int, int, int]]:
    """Keep every ``factor``-th voxel per axis of an x-fastest ``nx*ny*nz`` array."""
    nx, ny, nz = dims
    vol = np.asarray(voxels).reshape(nz, ny, nx)
    if factor > 1:
        vol = vol[::factor, ::factor, ::factor]
    return np.ascontiguousarray(vol), (int(vol.shape[2]), int(vol.shape[1]), int(vol.shape[0]))
