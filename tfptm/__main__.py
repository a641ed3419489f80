import sys

from tfptm.cli import main

sys.exit(main())
