"""`python -m masksmith.cli`: the `masksmith` command."""

from masksmith.cli import main

main()
