"""Strict, pure parsers for git's on-disk formats: bytes (or a stream) in, findings out. No I/O."""
