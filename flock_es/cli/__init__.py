"""The ``flock-es`` command line."""
