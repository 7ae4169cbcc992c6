import sys

from ppruning_client.commands import main

sys.exit(main())
