"""Fuzz target: commit-graph files and chains (snapcheck.gitformats.commit_graph).

Run: ``python fuzz/fuzz_commit_graph.py [corpus_dir] -max_total_time=N`` (see fuzz/README.md).
Each input is also tried with its trailing checksum made right, so mutations reach the chunk checks.
"""

from __future__ import annotations

from _harness import ALGOS, check, has_errors, main, rehashed

from snapcheck.gitformats import commit_graph as cg


def TestOneInput(data: bytes) -> None:
    for algo in ALGOS:
        for buf in (data, rehashed(data, algo)):
            for given in (None, algo):
                g, findings = cg.parse_commit_graph(buf, "objects/info/commit-graph", given, verify_checksum=True)
                check(findings)
                if g is None:
                    assert findings
                    continue
                for i in (0, g.count // 2, g.count - 1) if g.count else ():
                    name = g.name(i)
                    assert g.find(name) is not None or has_errors(findings)
                    g.commit(i)
                    g.corrected_date(i)
                check(cg.check_parents(g, "objects/info/commit-graph", limit=g.count))
                check(cg.check_commit_graph_chain([buf[-algo.rawsz:]], {"graph-x.graph": g},
                                                  "objects/info/commit-graphs/commit-graph-chain"))
    for given in (None, *ALGOS):
        chain, findings = cg.parse_commit_graph_chain(data, "objects/info/commit-graphs/commit-graph-chain", given)
        check(findings)
        check(cg.check_commit_graph_chain(chain, {}, "objects/info/commit-graphs/commit-graph-chain"))


if __name__ == "__main__":
    main(TestOneInput)
