"""The one exception type for mistakes a user can fix."""


class UserError(Exception):
    """A bad input: the message is one sentence naming the input and what to do.

    Front ends show it as it is (exit code 2 on the CLI, a notification in the TUI), never with a
    traceback.
    """
