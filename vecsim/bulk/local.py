"""An ingest in this process: rows read, decoded and embedded one after the other with the
index's own descriptor and media options, and written in groups (:class:`Groups`)."""

from __future__ import annotations

from collections.abc import Iterable

from ..index import CustomIndex
from .work import Embedded, Embedder, Fetched, Task, fetch
from .writer import Committer

#: A group is written once it holds this many frames (or at the end of a chunk of rows): frame
#: rows go to the store in large inserts, and memory holds one group's vectors and features.
GROUP_FRAMES = 2048


class Groups:
    """Collects embedded assets and writes them through ``committer`` a group at a time."""

    def __init__(self, committer: Committer, tally):
        self.committer, self.tally = committer, tally
        self.items: list[Embedded] = []
        self.frames = 0

    def add(self, item: Embedded) -> None:
        self.items.append(item)
        self.frames += len(item.frames)
        if self.frames >= GROUP_FRAMES:
            self.flush()

    def flush(self) -> None:
        items, self.items, self.frames = self.items, [], 0
        if items:
            for outcome in self.committer.write(items):
                self.tally.outcome(outcome)


def run_local(chunks: Iterable[list[Task]], index: CustomIndex, tally, replace: bool) -> None:
    embedder = Embedder(index.descriptor, index.media_options, index._stores_local, index.batch_size)
    groups = Groups(Committer(index, replace), tally)
    try:
        for tasks in chunks:
            for task in tasks:
                item = fetch(task, index.media_options)
                if isinstance(item, Fetched):
                    item = embedder.embed(item)
                if isinstance(item, Embedded):
                    groups.add(item)
                else:
                    tally.outcome(item)
            groups.flush()
    finally:
        groups.flush()  # also on Ctrl-C: what is embedded is written whole
