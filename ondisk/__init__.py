"""On-disk contracts shared by the agent and audit-query: what one writes and the other reads."""
