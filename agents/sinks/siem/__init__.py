"""The SIEM sink, split by role as Vector splits its larger sinks:

    config.py         `[sinks.siem]`: its keys, its checks, what the seed's settings make of it
    sink.py           the sink: a batch -> requests of at most batch_size events and max_batch_bytes,
                      what is settled kept across retries, Retry-After handed to the runner; build()
    classify.py       what an answer means: DELIVERED, ERRORED (retried), REJECTED (dead letters)
    splunk_hec.py     Splunk HEC, with indexer acknowledgement as an option
    elasticsearch.py  Elasticsearch/OpenSearch `_bulk`, per-item results
    generic.py        a JSON array POSTed with an API key header
    payload.py        each event as auditship writes it, or as OCSF (ocsf.py)

Only the SIEM's worker imports sink.py (and so httpx).
"""
