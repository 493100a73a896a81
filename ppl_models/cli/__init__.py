"""The ``ppl`` command line: argument parsing only; the work happens in the library."""
