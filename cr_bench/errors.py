"""The one exception type for user errors: the CLI prints its message on one line."""


class CrBenchError(Exception):
    """Bad input from the user (flags, YAML, run directories); never a bug of ours."""
