"""The state API's exceptions, with Ray's names and bases."""


class DataSourceUnavailable(Exception):
    pass


class RayStateApiException(Exception):
    pass


class ServerUnavailable(RayStateApiException):
    """The cluster could not be reached."""
