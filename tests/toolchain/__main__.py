import sys

from .install import main

sys.exit(main(sys.argv[1:]))
