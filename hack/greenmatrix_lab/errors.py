"""The one exception the lab raises for things an operator of the lab can act on."""


class LabError(RuntimeError):
    """The lab could not do what was asked; the message says why and where the logs are."""
