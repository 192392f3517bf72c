"""Service-layer errors. They know nothing of HTTP; ``service.api.errors`` maps them to status codes."""

from __future__ import annotations


class ServiceError(Exception):
    code = "error"

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(ServiceError):
    """A request value is invalid; ``field`` names it (e.g. ``samples[3].x_b64``)."""
    code = "invalid_input"


class ModelNotFound(ServiceError):
    code = "model_not_found"


class ModelExists(ServiceError):
    code = "model_exists"


class PredictionNotFound(ServiceError):
    code = "prediction_not_found"


class FeedbackConflict(ServiceError):
    code = "feedback_already_given"


class NotReady(ServiceError):
    """The model is still recovering, or the service is shutting down."""
    code = "not_ready"


class WrongRole(ServiceError):
    """The request needs another role (``hebb serve --role``): e.g. learning sent to a predictor."""
    code = "wrong_role"


class NotLeader(ServiceError):
    """A learner that does not hold the model's lease (standby): retry, the active learner answers."""
    code = "not_leader"
