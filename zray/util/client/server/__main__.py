import sys

from zray.util.client.server.proxier import main

sys.exit(main())
