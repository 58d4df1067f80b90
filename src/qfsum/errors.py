"""The one exception type that means "the user gave us something we cannot use"."""


class QfsumError(Exception):
    """A user error: bad input, unknown model, missing file.

    The CLI prints its message as one line on stderr and exits with code 2;
    the HTTP server turns it into a 4xx. Anything else is a bug and keeps its traceback.
    """
