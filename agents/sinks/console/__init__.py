"""The console sink: each event on stdout or stderr, for development.

config.py  `[sinks.console]`: its keys, what the seed's settings make of it
sink.py    the sink and build()
"""
