"""Tamper evidence: signed, chained digests of what the file and parquet sinks write.

signing.py holds the Ed25519 key (in keys_dir); chain.py appends a digest to a sink's chain under its
lock and keeps the run record; ledger.py follows the WAL seqs a sink wrote and the holes it declared;
sink_digests.py is what the sinks' own digests (agents/sinks/file/digests.py, parquet/digests.py) share:
when one is due, and what a failure to write one does; removals.py records what retention removes. The
format is ondisk/digests.py's; `audit-query verify` (query/verify/) checks it.
"""
