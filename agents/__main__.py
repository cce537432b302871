import sys

from auditship.agents.cli import main

sys.exit(main())
