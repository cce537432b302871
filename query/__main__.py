"""`python -m auditship.query`: audit-query without the installed script."""

import sys

from auditship.query.cli import main

sys.exit(main())
