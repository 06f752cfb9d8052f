"""`python -m vidpan ...` (and `torchrun -m vidpan ...`) run the command-line interface."""

from vidpan.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
