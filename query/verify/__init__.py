"""`audit-query verify`: the sinks' signed, chained digests (agents/integrity/, ondisk/digests.py)
checked against what is on disk, with a verdict per object.

command.py parses the command line; run.py runs the checks: chain.py (the digests themselves),
state.py (what they say, replayed), objects.py (each object on disk against it), diagnose.py (what
changed in one that does not hash as digested), continuity.py (no WAL seq lost between objects);
report.py holds the verdicts and prints them.
"""
