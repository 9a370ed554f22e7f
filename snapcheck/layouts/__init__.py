"""Storage layouts other tools use for snapshots (pure: keys, metadata and companion documents in,
findings out).  :mod:`snapcheck.layouts.cachew` describes block/cachew's cache bucket."""
