"""The audit-agent's and audit-query's packages, installed under a name no other distribution uses.

    auditship.agents   the audit-agent daemon            (the repository's agents/ folder)
    auditship.query    audit-query over the lake          (query/)
    auditship.ondisk   what the agent writes and audit-query reads   (ondisk/)

Generic top-level names such as `agents` and `query` are installed by other distributions too (the
OpenAI Agents SDK installs `agents`), and two distributions writing one package break each other. The
folders stay at the repository's root, one per part of the architecture; here each is a symbolic link,
so that Python, the type checker and the wheel all see `auditship.<part>`. What a service imports is
`shipper`, which keeps its own name.
"""
