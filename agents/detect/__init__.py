"""Detection in the agent: the `detect` worker reads the WAL on its own cursor, as a sink does, keeps
bounded per-key state for each rule, and sends what it finds back through the intake as
SUSPICIOUS_ACTIVITY or SECURITY_VIOLATION events. `audit-query anomalies` runs the same rules over the
lake (auditship.query.anomalies); both read the rules from `rules.py`.
"""
