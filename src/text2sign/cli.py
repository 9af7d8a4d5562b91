"""What the command-line scripts share: bad input ends in one line and exit code 2, not a traceback."""

from __future__ import annotations

import os
import sys
from typing import Callable

DEBUG_VARIABLE = "TEXT2SIGN_DEBUG"  # set it to see the full traceback of an input error


def run_with_one_line_errors(program: str, body: Callable[[], int]) -> int:
    """Run `body`; a ValueError/FileNotFoundError (how this project reports bad input, saying what to fix)
    becomes `program: error: message` on stderr and exit code 2. Any other exception is a bug and keeps
    its traceback."""
    try:
        return body()
    except (ValueError, FileNotFoundError) as error:
        if os.environ.get(DEBUG_VARIABLE):
            raise
        message = " ".join(str(error).split())  # one line, even for a message that wraps
        print(f"{program}: error: {message}", file=sys.stderr)
        return 2
