"""The sinks: each in its own folder, and what they share.

base.py      what a sink is: Delivery, Entry, Refused, the Sink protocol, BuiltSink, SinkConfig
runner.py    the loop every sink worker runs, which owns the delivery guarantees; build_sink()
registry.py  which sinks exist (SinksConfig)
tls.py       the TLS client context of the sinks that speak TLS (siem, syslog)
<sink>/      config.py (its section of agent.toml) and sink.py (the sink and its build()):
             file, console, parquet, sql, siem, syslog
"""
