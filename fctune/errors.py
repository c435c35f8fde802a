"""The one base class of the problems a user can fix: bad input, a missing prerequisite, an endpoint or server
that cannot be used. Every command line catches it, prints its message on one line (file, row, field where there
is one) and exits 2; anything else is a bug and keeps its traceback."""


class UserError(Exception):
    """A problem the user can fix; the message says what and where."""
