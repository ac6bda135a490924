"""``unlearn`` command line (the method suite is built in its own issue)."""

import sys


def main() -> int:
    print("error: the unlearn command is not built yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
