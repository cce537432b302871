"""Rules in Sigma (https://sigmahq.io), the format SOC teams share, compiled by pySigma's parser into the
detector's own families: a rule's detection becomes a Selection (a test on the event and the same as
SQL), an `event_count` correlation a sliding count, a `value_count` one a sliding distinct count. So a
Sigma rule runs in the streaming detector and in `audit-query anomalies` as a built-in rule does.
pySigma is needed only when `[detect] sigma_rules` names files (`pip install 'auditship[sigma]'`).
"""
