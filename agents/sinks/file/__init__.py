"""The file sink: JSON Lines (or readable text) under the data directory, rotated and compressed.

config.py  `[sinks.file]`: its keys, what the seed's settings make of it
sink.py    the sink (idempotent across crashes, rotation by size) and build()
"""
