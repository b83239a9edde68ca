"""Media input: every accepted kind of input and format, and a typed error for every bad one."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from vecsim.errors import (
    CorruptMediaError,
    EmptyMediaError,
    InvalidRequestError,
    MediaError,
    MediaNotFoundError,
    MediaTooLargeError,
    UnsupportedMediaError,
)
from vecsim.media import MediaOptions, decode_image, expand_sources, open_media

from .conftest import encode


@pytest.fixture(scope="module")
def photo(photos):
    return photos["coffee"]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_each_format_decodes_to_rgb(photo, fmt):
    data = encode(photo, fmt)
    media = decode_image(data)
    (frame,) = media.read_all()
    assert media.media_type == "image" and frame.timestamp == 0.0
    assert frame.image.mode == "RGB" and frame.image.size == photo.size
    diff = np.abs(np.asarray(frame.image, np.int16) - np.asarray(photo, np.int16)).mean()
    assert diff < 40  # GIF quantises to 256 colours; the others are close


def test_path_bytes_fileobj_and_pil_give_the_same_pixels(photo, tmp_path):
    path = tmp_path / "p.png"
    photo.save(path)
    data = path.read_bytes()
    arrays = [
        np.asarray(decode_image(x).read_all()[0].image)
        for x in (str(path), path, data, io.BytesIO(data), photo)
    ]
    for a in arrays[1:]:
        assert np.array_equal(a, arrays[0])
    assert decode_image(str(path)).source == str(path)


def test_exif_orientation_is_applied(photo):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 clockwise to display
    media = decode_image(encode(photo, "JPEG", exif=exif.tobytes()))
    w, h = photo.size
    assert media.read_all()[0].image.size == (h, w)


def test_animated_gif_is_a_video_sampled_by_frame_durations():
    colours = ((255, 0, 0), (0, 0, 255), (0, 255, 0))
    frames = [Image.new("RGB", (40, 30), c) for c in colours]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=600, loop=0)
    stream = open_media(buf.getvalue())
    assert stream.media_type == "video"
    got = stream.read_all()
    assert [f.timestamp for f in got] == [0.0, 1.2]  # 0.6 s is skipped at 1 fps
    assert got[0].image.getpixel((5, 5))[0] > 200 and got[1].image.getpixel((5, 5))[1] > 200
    assert stream.duration == 1.8
    with pytest.raises(UnsupportedMediaError, match="is a video"):
        decode_image(buf.getvalue())


def test_palette_with_transparency_is_composited_on_white():
    im = Image.new("P", (20, 20), 0)
    im.putpalette([0, 0, 0] * 256)
    im.info["transparency"] = 0
    out = decode_image(encode(im, "PNG", transparency=0)).read_all()[0].image
    assert out.getpixel((3, 3)) == (255, 255, 255)


def test_rgba_and_la_alpha_composited():
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    assert decode_image(encode(rgba, "PNG")).read_all()[0].image.getpixel((1, 1)) == (255, 255, 255)
    la = Image.new("LA", (10, 10), (0, 255))
    assert decode_image(encode(la, "PNG")).read_all()[0].image.getpixel((1, 1)) == (0, 0, 0)


def test_cmyk_jpeg_converts(photo):
    cmyk = photo.convert("CMYK")
    out = decode_image(encode(cmyk, "JPEG", quality=95)).read_all()[0].image
    diff = np.abs(np.asarray(out, np.int16) - np.asarray(photo, np.int16)).mean()
    assert out.mode == "RGB" and diff < 25


def test_16_bit_png_scales_to_8_bit():
    arr = np.linspace(0, 65535, 64 * 64).astype(np.uint16).reshape(64, 64)
    im = Image.fromarray(arr)
    out = np.asarray(decode_image(encode(im, "PNG")).read_all()[0].image)[..., 0]
    assert out.min() == 0 and out.max() == 255
    assert abs(int(out[32, 32]) - 128) <= 2  # mid-grey stays mid-grey (not clipped to white)


def test_zero_bytes(tmp_path):
    with pytest.raises(EmptyMediaError, match="zero bytes"):
        decode_image(b"")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(EmptyMediaError) as err:
        open_media(tmp_path / "empty.jpg")
    assert err.value.source == str(tmp_path / "empty.jpg")


def test_text_mode_file_object_is_refused_by_name(tmp_path, photo):
    path = tmp_path / "p.png"
    photo.save(path)
    with open(path, "r", encoding="latin-1") as f:  # text mode: read() gives str
        with pytest.raises(UnsupportedMediaError, match="binary mode") as err:
            open_media(f)
    assert err.value.source == str(path)


def test_not_an_image(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is text, not a JPEG")
    with pytest.raises(UnsupportedMediaError) as err:
        decode_image(p)
    assert str(p) in str(err.value) and "not an image" in str(err.value)
    assert err.value.source == str(p)


def test_truncated_jpeg(photo):
    data = encode(photo, "JPEG")
    with pytest.raises(CorruptMediaError, match="truncated") as err:
        decode_image(data[: len(data) // 2])
    assert err.value.source == f"<bytes: {len(data) // 2}>"


def test_truncated_png(photo):
    data = encode(photo, "PNG")
    with pytest.raises(CorruptMediaError):
        decode_image(data[: len(data) // 3])


def _png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with a tiny body: a decompression-bomb header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda tag, body: struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_decompression_bomb_refused_from_header(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_claiming(30000, 30000))
    with pytest.raises(MediaTooLargeError, match="pixels") as err:
        decode_image(path, max_pixels=64_000_000)
    assert err.value.source == str(path)


def _gif_header_claiming(width: int, height: int, frames: int = 1) -> bytes:
    """A tiny GIF whose logical screen and frames claim width x height."""
    head = b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0)
    image = b"".join(b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x4c\x01\x00"
                     for _ in range(frames))
    return head + image + b"\x3b"


@pytest.mark.parametrize("frames", [1, 3])
def test_gif_header_with_huge_dimensions_is_refused(frames):
    with pytest.raises(MediaTooLargeError, match="pixels") as err:
        open_media(_gif_header_claiming(65535, 65535, frames))
    assert err.value.source.startswith("<bytes")


def test_configurable_pixel_limit(photo):
    with pytest.raises(MediaTooLargeError, match="max_pixels"):
        decode_image(encode(photo, "PNG"), max_pixels=1000)


def test_missing_path_and_directory(tmp_path):
    with pytest.raises(MediaNotFoundError):
        decode_image(tmp_path / "nope.png")
    with pytest.raises(UnsupportedMediaError, match="directory"):
        decode_image(tmp_path)


def test_expand_sources_recurses_and_filters(tmp_path, photo):
    (tmp_path / "a" / "b").mkdir(parents=True)
    photo.save(tmp_path / "a" / "one.jpg")
    photo.save(tmp_path / "a" / "b" / "two.PNG")
    (tmp_path / "a" / "readme.txt").write_text("x")
    found = expand_sources([tmp_path])
    assert found == sorted(found)  # deterministic order: sorted paths
    assert sorted(p.split("/")[-1] for p in found) == ["one.jpg", "two.PNG"]


def _gif(durations_ms: list[int], size=(40, 30)) -> bytes:
    frames = [Image.new("RGB", size, (255 * (i % 2), 0, 255)) for i in range(len(durations_ms))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=durations_ms, loop=0)
    return buf.getvalue()


def test_animated_gif_longer_than_max_duration_is_refused_before_any_frame(tmp_path):
    path = tmp_path / "long.gif"
    path.write_bytes(_gif([2500, 2500]))  # 5 s: its last frame starts at 2.5 s, within the limit
    with pytest.raises(MediaTooLargeError, match="max_duration") as err:
        open_media(path, max_duration=3)
    assert err.value.source == str(path)
    assert open_media(path, max_duration=6).duration is None  # a video: known once read
    from vecsim import CustomIndex

    with CustomIndex(str(tmp_path / "g.db"), max_duration=3) as idx:
        before = (idx.count(), idx.info().frames)
        with pytest.raises(MediaTooLargeError):
            idx.add(path)
        assert (idx.count(), idx.info().frames) == before


def test_media_options_validate_and_name_the_field():
    assert MediaOptions() == MediaOptions(fps=1.0, max_duration=4 * 3600.0, max_pixels=64_000_000)
    for field, bad in [("fps", 0), ("fps", -1.0), ("fps", "2"), ("max_duration", 0), ("max_pixels", 0),
                       ("max_pixels", 1.5), ("dedupe_distance", 300), ("dedupe_distance", -1)]:
        with pytest.raises(InvalidRequestError, match=field):
            MediaOptions(**{field: bad})
    options = MediaOptions(fps=2)
    assert options.replace(max_pixels=None) is options and options.replace(fps=3).fps == 3.0
    with pytest.raises(InvalidRequestError, match="fps"):
        options.replace(fps=0)
    with pytest.raises(Exception):
        options.fps = 5  # frozen


def test_stream_attributes_complete_after_iteration(photo):
    stream = open_media(encode(photo, "PNG"))
    assert stream.media_type == "image" and stream.duration == 0.0 and stream.frame_count == 0
    assert (stream.width, stream.height) == photo.size
    assert len(list(stream)) == 1 and stream.frame_count == 1 and stream.warnings == []
    assert list(stream) == []  # one shot


def test_every_bad_input_is_a_typed_error_naming_it(tmp_path, photo):
    cases = {
        "text.jpg": b"this is text, not a JPEG",
        "cut.jpg": encode(photo, "JPEG")[:2000],
        "bomb.png": _png_header_claiming(30000, 30000),
        "huge.gif": _gif_header_claiming(65535, 65535),
        "empty.png": b"",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(MediaError) as err:
            open_media(tmp_path / name).read_all()
        assert err.value.source == str(tmp_path / name), name


def test_media_package_imports_one_way():
    """No import cycle inside vecsim/media/: each module imports only modules below it."""
    import ast
    from pathlib import Path

    import vecsim.media

    folder = Path(vecsim.media.__file__).parent
    graph = {}
    for path in folder.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                deps |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vecsim.media."):
                deps.add(node.module.split(".")[2])
        graph[path.stem] = deps

    def reach(name, seen):
        for dep in graph.get(name, ()):
            assert dep not in seen, f"import cycle: {' -> '.join([*seen, dep])}"
            reach(dep, [*seen, dep])

    for name in graph:
        reach(name, [name])
    assert not graph["frame"] and "__init__" not in set().union(*graph.values())
