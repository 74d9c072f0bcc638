"""``python -m landmarks.data``: the list-building command (landmarks.commands.lists)."""

import sys

from landmarks.commands.lists import main

if __name__ == "__main__":
    sys.exit(main())
