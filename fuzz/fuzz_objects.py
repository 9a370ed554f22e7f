"""Fuzz target: commit, tree and tag parsing and git's fsck format rules (snapcheck.gitformats.objects).

Run: ``python fuzz/fuzz_objects.py [corpus_dir] -max_total_time=N`` (see fuzz/README.md).
The first byte of an input picks the object type (seeds are written that way by make_seeds.py).
"""

from __future__ import annotations

from _harness import ALGOS, check, main

from snapcheck.gitformats.objects import (
    check_object_format,
    commit_links,
    object_links,
    tag_target,
    tree_entries,
)


def TestOneInput(data: bytes) -> None:
    obj_type, content = (data[0] % 8, data[1:]) if data else (0, b"")
    for algo in ALGOS:
        check(check_object_format(obj_type, content, b"\x01" * algo.rawsz, algo, "objects/pack/pack-x.pack"))
        links = object_links(obj_type, content, algo)
        if links is not None:
            ids = [links.tree, links.target, *links.parents, *links.subtrees, *links.blobs, *links.gitlinks]
            assert all(len(i) == algo.rawsz for i in ids if i is not None), links
        commit_links(content, algo)
        tag_target(content, algo)
        entries = tree_entries(content, algo)
        if entries is not None:
            assert all(len(i) == algo.rawsz for i in [*entries.subtrees, *entries.blobs, *entries.gitlinks])


if __name__ == "__main__":
    main(TestOneInput)
