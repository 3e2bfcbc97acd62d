"""`python -m caxton_cli`: the same as the `caxton` command."""

from caxton_cli.main import main

main()
