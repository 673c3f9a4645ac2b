"""``python -m sessionscope``: the same as the ``sessionscope`` command (the demo starts its server
this way, with the interpreter that runs the console)."""

from sessionscope.cli import main

main()
