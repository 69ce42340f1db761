"""Named domain errors with messages a person can act on."""


class DomainError(Exception):
    """Base of every rule the domain refuses to break."""


class AccountNotFound(DomainError):
    pass


class InvalidPhone(DomainError):
    pass


class PromiseRejected(DomainError):
    """A promise outside the policy (date beyond the horizon, amount below the minimum...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class OfferRejected(DomainError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
