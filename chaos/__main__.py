import sys

from chaos.month import main

sys.exit(main())
