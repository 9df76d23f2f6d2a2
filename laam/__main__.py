"""`python -m laam ...`: the same as the `laam` command (used by `torchrun -m laam train ...`)."""

from laam.cli import main

if __name__ == "__main__":
    main()
