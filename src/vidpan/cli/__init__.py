"""The ``vidpan`` command line: a thin layer of argument parsing over library functions."""
