"""The syslog sink: RFC 5424 over TCP or TLS, octet-counted.

config.py  `[sinks.syslog]`: its keys
sink.py    the sink and build()
cef.py     an event as ArcSight CEF, the `cef` payload
"""
