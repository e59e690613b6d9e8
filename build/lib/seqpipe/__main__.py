"""`python -m seqpipe` is the same as the `seqpipe` command."""

from seqpipe.cli import main

main()
