"""Errors that tell the user what to change."""


class PactError(Exception):
    """Base class: the message names the file/row/field or config key and says what to do."""


class ConfigError(PactError, ValueError):
    """A configuration value is invalid or two values cannot be combined."""


class DataError(PactError, ValueError):
    """An input file or data source is malformed (message names file, row and field)."""


class ArtifactError(PactError, ValueError):
    """A safety-token artifact, reference cache or checkpoint is missing, corrupt or made for something else."""
