"""`python -m query`: audit-query without the installed script."""

import sys

from query.cli import main

sys.exit(main())
