"""Where a snapshot's bytes come from: a directory, a tar stream (maybe compressed), an S3 object.

Every source yields the same :class:`~snapcheck.sources.base.Entry` objects, so one verifier
serves them all.
"""
