"""The project's base class for failures a user can act on.

Everything raised as a `UserError` (and the standard ValueError, FileNotFoundError,
FileExistsError, FloatingPointError the project raises for bad input) is reported by
`avrl_jax.cli` as one line naming the problem and the fix; the traceback goes to the log file.
"""


class UserError(Exception):
    """A failure with a message that names its cause and what to do about it."""
