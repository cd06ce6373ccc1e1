"""`python -m charrnn`: the same as the `charrnn` command."""

from .cli import main

main()
