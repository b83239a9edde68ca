"""``vecsim demo``: the main job on the embedded default, offline.

Indexes real photos that ship with scikit-image plus generated distractors in a temporary
embedded index (the default engine), queries with edited copies (crop, text overlay, rotation, colour change, JPEG, mirror,
meme frame) and with photos that are not in the index, and prints what was found.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .edits import demo_edits
from .index import DEFAULT_THRESHOLD, CustomIndex
from .sample_media import SAMPLE_PHOTOS, generated_distractor, sample_photos

#: Photos kept out of the index, queried to show that non-copies come back empty.
HELD_OUT = ("brick", "gravel")
DISTRACTORS = 60


def _video_part(index: CustomIndex, photos: dict, tmp: Path, console: Console) -> None:
    """Index a 30 s video made from five of the photos; query a cropped, captioned excerpt of it
    spliced into an unrelated video; show the matched segments."""
    from .edits import center_crop, chain, text_overlay
    from .video_edits import VideoEdit, apply_edit, insert_into, slideshow, write_video

    size, fps = (320, 240), 10
    shots = ["astronaut", "coffee", "rocket", "camera", "coins"]
    trailer = write_video(tmp / "trailer.mp4", slideshow([photos[n] for n in shots], 6, fps, size, seed=4), fps)
    index.add(trailer, task_id="trailer", metadata={"title": "30 s video: pans over five of the photos"})
    excerpt = apply_edit(trailer, tmp / "excerpt.mp4",
                         VideoEdit("re-upload", 12, 22, frame_edit=chain(center_crop(0.6), text_overlay("re-upload"))))
    host = write_video(tmp / "host.mp4", slideshow([photos[n] for n in HELD_OUT], 8, fps, size, seed=1), fps)
    query = insert_into(host, excerpt, tmp / "upload.mp4", at=5)
    t = time.perf_counter()
    result = index.query(query)
    ms = (time.perf_counter() - t) * 1000
    table = Table(title=f"Video query: 10 s of the video (12–22 s), cropped and captioned, inside a "
                        f"{result.duration:.0f} s unrelated upload at 5 s ({ms:.0f} ms)")
    for col in ("asset", "type", "score", "matched", "segments (query s → asset s)"):
        table.add_column(col)
    for a in result.output:
        segs = ", ".join(f"{s.query_start:g}–{s.query_end:g} → {s.match_start:g}–{s.match_end:g}" for s in a.segments[:2])
        table.add_row(a.task_id, a.media_type, f"{a.score:.2f}", f"{a.matched_ratio:.0%}", segs)
    console.print(table)
    console.print("The video ranks first with the segment it copies; its photos match as images (a photo "
                  "found inside a video). [dim]vecsim query upload.mp4 --plot timeline.png draws this "
                  "(after pip install 'vecsim\\[plot]').[/]\n")


def run_demo(uri: str | None = None, console: Console | None = None) -> int:
    """Run the demo; returns the number of edited copies whose original was not ranked first."""
    console = console or Console(width=None if sys.stdout.isatty() else 120)
    with tempfile.TemporaryDirectory(prefix="vecsim-demo-") as tmp:
        uri = uri or str(Path(tmp) / "demo.db")
        photos = sample_photos()
        indexed = {n: im for n, im in photos.items() if n not in HELD_OUT}
        with CustomIndex(uri, collection="vecsim_demo") as index:
            console.print(f"[bold]vecsim demo[/] — index: {index.store.engine} at {uri}")
            t = time.perf_counter()
            added = index.add_many(
                list(indexed.values()),
                metadata=[{"title": SAMPLE_PHOTOS[n], "photo": n} for n in indexed],
                task_ids=list(indexed),
            )
            index.add_many(
                [generated_distractor(i) for i in range(DISTRACTORS)],
                metadata={"title": "generated distractor"},
                task_ids=[f"distractor-{i:03d}" for i in range(DISTRACTORS)],
            )
            console.print(
                f"indexed {len(added.added)} real photos from scikit-image + {DISTRACTORS} generated "
                f"distractors in {time.perf_counter() - t:.1f} s (descriptor {index.descriptor.name} "
                f"v{index.descriptor.version}, {index.info().index['type']} index)\n"
            )

            table = Table(title="Queries: edited copies and photos that are not in the index")
            for col in ("query", "edit", "top match", "similarity", "exact", "ms", ""):
                table.add_column(col, justify="right" if col in ("similarity", "exact", "ms") else "left")
            misses = 0
            queries = [(n, e) for i, n in enumerate(indexed) for e in list(demo_edits())[i % 3 :: 3]]
            queries += [(n, "not in index") for n in HELD_OUT]
            edits = demo_edits()
            for name, edit in queries:
                image = photos[name] if edit == "not in index" else edits[edit](photos[name])
                t = time.perf_counter()
                result = index.query(image)
                ms = (time.perf_counter() - t) * 1000
                if edit == "not in index":
                    ok = not result.output
                    top = result.output[0] if result.output else None
                else:
                    top = result.output[0] if result.output else None
                    ok = top is not None and top.task_id == name
                misses += not ok
                table.add_row(
                    name, edit,
                    top.task_id if top else f"— none ≥ {DEFAULT_THRESHOLD} —",
                    f"{top.matches[0].similarity_score:.3f}" if top else "",
                    f"{top.matches[0].exact_score:.3f}" if top else "",
                    f"{ms:.0f}",
                    "[green]✓[/]" if ok else "[red]✗[/]",
                )
            console.print(table)
            held_out = index.descriptor.calibration.notes.get("held_out_odd_half", {}).get("0.9", {})
            precision = f" ({held_out['precision']:.0%} precision on held-out photos)" if held_out else ""
            console.print(
                f"similarity = calibrated robust score; threshold 0.9{precision}. "
                "exact = PDQ score (high only for near-identical pixels). "
                f"Default threshold {DEFAULT_THRESHOLD}: weaker matches are not returned.\n"
                f"[bold]{len(queries) - misses}/{len(queries)} queries answered correctly.[/]\n"
            )
            _video_part(index, photos, Path(tmp), console)
    return misses
