"""The one error type the CLI turns into a single clear line and exit code 2."""


class InputError(Exception):
    """Bad input from the user: a file, a column, a row, a checkpoint, an output path.

    The message names the file (and row, where there is one) and the problem, in one line.
    """

    exit_code = 2
