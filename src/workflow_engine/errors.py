"""Every error the engine raises on purpose.

One base, :class:`WorkflowError`, carries a stable machine-readable ``code``, the HTTP
status it maps to and any context worth showing the client. The API turns each into an
``application/problem+json`` response in one place (``api/problems.py``); the core and
the store raise them without knowing about HTTP.

The tree, split by who has to react::

    WorkflowError
    ├── InvalidRequest (400)            the request itself cannot be read
    │   ├── MalformedJSON
    │   ├── InvalidParameter
    │   ├── InvalidPath
    │   ├── InvalidHeader
    │   └── InvalidEventId           a Last-Event-ID (or ?after=) that is no event id
    ├── ValidationFailed (422)          readable, but the content is wrong (errors[])
    │   ├── DefinitionInvalid
    │   ├── InputsInvalid                a start's inputs: a state without a block, bad params
    │   ├── HookRowsInvalid              a webhook's JSON body is not a list of rows
    │   └── IdempotencyKeyReused
    ├── NotFound (404)
    │   ├── RouteNotFound, DefinitionNotFound, DefinitionVersionNotFound
    │   ├── InstanceNotFound, ActionNotFound, EventNotFound, NoTable, BranchNotFound
    │   ├── FileNotFound                 no such file in a storage area
    │   ├── TriggerNotFound              no such trigger in a definition's latest version
    │   └── UnknownWebhook               an enrichment report at no address we gave out
    ├── Unauthenticated (401)           no valid API token (auth.py checks tokens)
    ├── Forbidden (403)                 the token's scopes do not allow this
    │   └── ActorNotAllowed             the token may not name another actor (X-Actor)
    ├── HookUnauthorized (401)          a webhook call without the trigger's token
    ├── Conflict (409)                  the request is fine, the current state forbids it
    │   ├── DefinitionExists, InstanceExists, FileExists, ConcurrentModification
    │   ├── AutoTransitionLoop, NothingToRetry, NotRunning
    │   ├── RunHeldElsewhere            a worker meets a run another worker holds
    │   ├── RunInterrupted              a worker stops with a run unfinished
    │   └── TransitionNotAllowed
    │       ├── InstanceFinal, ActionDisabled, InstanceBusy, BlockNotSucceeded
    │       └── ActionNotAvailable, TargetStateDisabled, GuardNotSatisfied
    ├── BlockError (blocks/base.py)     recorded on the instance, never an HTTP answer
    ├── UpstreamError (502)             the enrichment API: auth, rejected, unavailable
    │                                   (outcome unknown), job failed, malformed
    │                                   (recorded on rows/instances)
    ├── OutboundError (502)             an http_request call: address refused, status,
    │                                   unavailable, outcome unknown, redirects, answer
    │                                   too large or not JSON, a template's column
    │                                   missing (recorded on rows)
    ├── PreconditionFailed (412)
    ├── PayloadTooLarge (413)
    ├── UnsupportedMediaType (415)
    ├── MethodNotAllowed (405)
    └── ServiceUnavailable (503)        the database cannot be reached
        └── TooManyStreams              this process serves as many event streams as
                                        it may
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

__all__ = [
    "ActionDisabled",
    "ActionNotAvailable",
    "ActionNotFound",
    "ActorNotAllowed",
    "AddressRefused",
    "AnswerNotJson",
    "AnswerTooLarge",
    "AutoTransitionLoop",
    "BlockNotSucceeded",
    "BranchNotFound",
    "ConcurrentModification",
    "Conflict",
    "DefinitionExists",
    "DefinitionInvalid",
    "DefinitionNotFound",
    "DefinitionVersionNotFound",
    "EventNotFound",
    "FileExists",
    "FileNotFound",
    "Forbidden",
    "GuardNotSatisfied",
    "HookRowsInvalid",
    "HookUnauthorized",
    "IdempotencyKeyReused",
    "InputsInvalid",
    "InstanceBusy",
    "InstanceExists",
    "InstanceFinal",
    "InstanceNotFound",
    "InvalidEventId",
    "InvalidHeader",
    "InvalidParameter",
    "InvalidPath",
    "InvalidRequest",
    "MalformedJSON",
    "MethodNotAllowed",
    "NoTable",
    "NotFound",
    "NotRunning",
    "NothingToRetry",
    "OutboundError",
    "OutboundOutcomeUnknown",
    "OutboundStatus",
    "OutboundUnavailable",
    "PayloadTooLarge",
    "PreconditionFailed",
    "Problem",
    "RouteNotFound",
    "RunHeldElsewhere",
    "RunInterrupted",
    "ServiceUnavailable",
    "TargetStateDisabled",
    "TemplateMissingColumn",
    "TooManyRedirects",
    "TooManyStreams",
    "TransitionNotAllowed",
    "TriggerNotFound",
    "Unauthenticated",
    "UnknownWebhook",
    "UnsupportedMediaType",
    "UpstreamAuthError",
    "UpstreamError",
    "UpstreamJobFailed",
    "UpstreamLeadMissing",
    "UpstreamMalformed",
    "UpstreamOutcomeUnknown",
    "UpstreamRejected",
    "UpstreamUnavailable",
    "ValidationFailed",
    "WorkflowError",
]


@dataclass(frozen=True)
class Problem:
    """One finding about a document: where it is (a JSON path), what it is, and why."""

    path: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        """The finding as JSON-ready data."""
        return asdict(self)


class WorkflowError(Exception):
    """Base of every error the engine raises on purpose.

    ``detail`` is a sentence for people; ``errors`` lists findings with JSON paths where
    there are several; ``context`` holds machine-readable facts (the current state...).
    """

    code: ClassVar[str] = "workflow_error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Workflow error"
    headers: ClassVar[dict[str, str]] = {}

    def __init__(self, detail: str, errors: Sequence[Problem] = (), **context: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors)
        self.context = context


class InvalidRequest(WorkflowError):
    """The request cannot be read as sent."""

    code = "invalid_request"
    status = 400
    title = "Invalid request"


class MalformedJSON(InvalidRequest):
    """The body is not well-formed JSON."""

    code = "malformed_json"
    title = "Malformed JSON"


class InvalidParameter(InvalidRequest):
    """A query or path parameter has a value the endpoint does not accept."""

    code = "invalid_parameter"
    title = "Invalid parameter"


class InvalidPath(InvalidRequest):
    """A file name that could lead outside its directory, or is not a plain name."""

    code = "invalid_path"
    title = "Invalid file name"


class InvalidHeader(InvalidRequest):
    """A request header has a value the endpoint does not accept."""

    code = "invalid_header"
    title = "Invalid header"


class InvalidEventId(InvalidRequest):
    """A ``Last-Event-ID`` header (or ``after`` parameter) that is not an event id of an
    instance's event stream."""

    code = "invalid_event_id"
    title = "Invalid event id"


class ValidationFailed(WorkflowError):
    """The body was read but its content is wrong; ``errors`` lists every problem."""

    code = "validation_failed"
    status = 422
    title = "Validation failed"


class DefinitionInvalid(ValidationFailed):
    """A workflow definition breaks one or more rules."""

    code = "definition_invalid"
    title = "Invalid workflow definition"


class InputsInvalid(ValidationFailed):
    """A start's ``inputs`` name a state without a block, or parameters its block refuses."""

    code = "inputs_invalid"
    title = "Invalid run inputs"


class HookRowsInvalid(ValidationFailed):
    """A webhook's JSON body is not rows: ``{"rows": [...]}`` or a list of objects of
    scalar values."""

    code = "hook_rows_invalid"
    title = "Invalid rows"


class IdempotencyKeyReused(ValidationFailed):
    """An ``Idempotency-Key`` was used before for a different request."""

    code = "idempotency_key_reused"
    title = "Idempotency key reused"


class NotFound(WorkflowError):
    """The thing asked for does not exist."""

    code = "not_found"
    status = 404
    title = "Not found"


class RouteNotFound(NotFound):
    """No endpoint answers at this path."""

    code = "route_not_found"
    title = "No such endpoint"


class DefinitionNotFound(NotFound):
    """No definition has this id."""

    code = "definition_not_found"
    title = "Definition not found"


class DefinitionVersionNotFound(NotFound):
    """The definition exists but not in the version asked for."""

    code = "definition_version_not_found"
    title = "Definition version not found"


class InstanceNotFound(NotFound):
    """No instance has this id."""

    code = "instance_not_found"
    title = "Instance not found"


class ActionNotFound(NotFound):
    """The instance's definition has no action with this id."""

    code = "action_not_found"
    title = "Action not found"


class Conflict(WorkflowError):
    """The request is well-formed but the current state of things forbids it."""

    code = "conflict"
    status = 409
    title = "Conflict"


class DefinitionExists(Conflict):
    """A definition with this id exists with different content."""

    code = "definition_exists"
    title = "Definition already exists"


class InstanceExists(Conflict):
    """An instance with this id was started by a different request."""

    code = "instance_exists"
    title = "Instance already exists"


class FileExists(Conflict):
    """An upload names a file that is there already (an upload or a sample) and does not
    ask to replace it."""

    code = "file_exists"
    title = "File exists"


class ConcurrentModification(Conflict):
    """Another request changed the instance between our read and our write."""

    code = "concurrent_modification"
    title = "Concurrent modification"


class TransitionNotAllowed(Conflict):
    """An action can't fire in the instance's current state."""

    code = "transition_not_allowed"
    title = "Transition not allowed"


class InstanceFinal(TransitionNotAllowed):
    """The instance is in a final state; nothing fires any more."""

    code = "instance_final"
    title = "Instance is in a final state"


class ActionDisabled(TransitionNotAllowed):
    """The action exists but is disabled."""

    code = "action_disabled"
    title = "Action disabled"


class ActionNotAvailable(TransitionNotAllowed):
    """The action does not leave from the instance's current state."""

    code = "action_not_available_from_state"
    title = "Action not available from the current state"


class TargetStateDisabled(TransitionNotAllowed):
    """The action leads into a disabled state."""

    code = "target_state_disabled"
    title = "Target state disabled"


class InstanceBusy(TransitionNotAllowed):
    """The instance's block is running; nothing else happens until it settles."""

    code = "instance_busy"
    title = "Instance busy"


class BlockNotSucceeded(TransitionNotAllowed):
    """The state's block failed or was cancelled: retry it before moving on."""

    code = "block_not_succeeded"
    title = "Block did not succeed"


class GuardNotSatisfied(TransitionNotAllowed):
    """The action's condition does not hold for the instance now."""

    code = "condition_not_met"
    title = "Condition not met"


class AutoTransitionLoop(Conflict):
    """Automatic actions keep firing without ever coming to rest: the definition loops."""

    code = "auto_transition_loop"
    title = "Automatic actions loop"


class NothingToRetry(Conflict):
    """Retry needs a failed or cancelled block in the current state."""

    code = "nothing_to_retry"
    title = "Nothing to retry"


class NotRunning(Conflict):
    """Cancel needs a running block."""

    code = "not_running"
    title = "Nothing is running"


class RunHeldElsewhere(Conflict):
    """A block run is held by another worker whose lease has not lapsed (a task queue's
    job meeting it tries again later; never an HTTP answer)."""

    code = "run_held_elsewhere"
    title = "Block run held by another worker"


class RunInterrupted(Conflict):
    """A block run stopped because its worker is stopping, not because it was cancelled:
    it is released for another worker (never an HTTP answer)."""

    code = "run_interrupted"
    title = "Block run interrupted by its worker stopping"


class NoTable(NotFound):
    """The instance has no table (yet) at that point of its history."""

    code = "no_table"
    title = "No table"


class FileNotFound(NotFound):
    """No file has this name in the storage area (nor in its fallback)."""

    code = "file_not_found"
    title = "File not found"


class BranchNotFound(NotFound):
    """The running block is not a fork, or has no branch of that id."""

    code = "branch_not_found"
    title = "Branch not found"


class TriggerNotFound(NotFound):
    """The latest version of the definition declares no trigger of that id (and kind)."""

    code = "trigger_not_found"
    title = "Trigger not found"


class UnknownWebhook(NotFound):
    """A webhook call we did not ask for: wrong secret, or a task we are not waiting on."""

    code = "unknown_webhook"
    title = "Unknown webhook"


class Unauthenticated(WorkflowError):
    """No valid bearer token was presented."""

    code = "unauthenticated"
    status = 401
    title = "Authentication required"
    headers = {"WWW-Authenticate": 'Bearer realm="workflow-engine"'}  # noqa: RUF012


class Forbidden(WorkflowError):
    """The token is valid but does not allow this."""

    code = "insufficient_scope"
    status = 403
    title = "Not allowed"


class ActorNotAllowed(Forbidden):
    """The token may not name another actor with X-Actor."""

    code = "actor_not_allowed"


class HookUnauthorized(WorkflowError):
    """A webhook call that does not carry the token of an enabled webhook trigger at its
    address (an unknown address answers the same: nothing is learnt without the token)."""

    code = "hook_unauthorized"
    status = 401
    title = "Webhook token required"
    headers = {"WWW-Authenticate": 'Bearer realm="workflow-engine-hooks"'}  # noqa: RUF012


class EventNotFound(NotFound):
    """The instance's history has no event with this seq."""

    code = "event_not_found"
    title = "History event not found"


class PreconditionFailed(WorkflowError):
    """``If-Match`` named a version of the instance that is no longer current."""

    code = "precondition_failed"
    status = 412
    title = "Precondition failed"


class PayloadTooLarge(WorkflowError):
    """The body is larger than the server accepts."""

    code = "payload_too_large"
    status = 413
    title = "Payload too large"


class UnsupportedMediaType(WorkflowError):
    """The body is not sent as ``application/json``."""

    code = "unsupported_media_type"
    status = 415
    title = "Unsupported media type"


class MethodNotAllowed(WorkflowError):
    """The endpoint exists but does not answer this HTTP method."""

    code = "method_not_allowed"
    status = 405
    title = "Method not allowed"


class ServiceUnavailable(WorkflowError):
    """A dependency the request needs (the database) cannot be reached."""

    code = "service_unavailable"
    status = 503
    title = "Service unavailable"
    headers: ClassVar[dict[str, str]] = {"Retry-After": "1"}


class TooManyStreams(ServiceUnavailable):
    """Every event stream this process may serve at once is open: each holds a request
    thread, so past the limit a new one waits for one to end."""

    code = "too_many_streams"
    title = "Too many event streams"
    headers: ClassVar[dict[str, str]] = {"Retry-After": "5"}


class UpstreamError(WorkflowError):
    """The enrichment API did not give us what we asked for."""

    code = "upstream_error"
    status = 502
    title = "Enrichment API error"


class UpstreamAuthError(UpstreamError):
    """The key is wrong, out of credit, or not allowed this: no request will succeed, so
    the block stops at once with this one error (401, 402, 403)."""

    code = "upstream_unauthorized"
    title = "Enrichment API refused the key"


class UpstreamRejected(UpstreamError):
    """The API refused this one request (400, 404, 422): retrying it will not help."""

    code = "upstream_rejected"
    title = "Enrichment API rejected the request"


class UpstreamUnavailable(UpstreamError):
    """Still 429, 5xx, a timeout or a network error after every retry."""

    code = "upstream_unavailable"
    title = "Enrichment API unavailable"


class UpstreamOutcomeUnknown(UpstreamUnavailable):
    """A submission was sent but its answer never came (lost to a timeout or a dropped
    connection, or the server stopped while waiting for it): it may have started a paid
    job, so it is not sent again unless the block says ``on_unknown_outcome: resubmit``."""

    code = "upstream_outcome_unknown"
    title = "Enrichment submission outcome unknown"


class UpstreamJobFailed(UpstreamError):
    """The API ran the job and reports that it failed."""

    code = "upstream_job_failed"
    title = "Enrichment job failed"


class UpstreamLeadMissing(UpstreamError):
    """A bulk job completed, but its answer has nothing for this subject (a short batch):
    the row gets this error; the subject is not sent again in the same run, a later run
    or retry sends it again (nothing was found for it to reuse)."""

    code = "upstream_lead_missing"
    title = "Subject missing from a bulk answer"


class UpstreamMalformed(UpstreamError):
    """The API answered something we cannot read (not JSON, no task id, unknown status)."""

    code = "upstream_malformed"
    title = "Unreadable enrichment API answer"


class OutboundError(WorkflowError):
    """A call of the http_request block did not give a usable answer; recorded in the row's
    error column, never an HTTP answer of ours. Messages never hold a secret's value."""

    code = "http_request_failed"
    status = 502
    title = "HTTP request failed"


class AddressRefused(OutboundError):
    """The host resolves to an address that is not public (loopback, private, link-local,
    multicast, reserved), on the first hop or a redirect, and the server does not allow it."""

    code = "address_refused"
    title = "Address refused"


class OutboundStatus(OutboundError):
    """The API answered an error status (4xx, or 429/5xx still after every retry)."""

    code = "http_status"
    title = "HTTP error status"


class OutboundUnavailable(OutboundError):
    """No answer: a timeout or a network error, still after every retry."""

    code = "http_unavailable"
    title = "HTTP API unavailable"


class OutboundOutcomeUnknown(OutboundError):
    """A non-idempotent request (POST, PATCH) left but its answer never came (a timeout, a
    dropped connection, or the server stopped meanwhile): it may have taken effect, so it
    is not sent again unless the block says ``on_unknown_outcome: resend``."""

    code = "http_outcome_unknown"
    title = "HTTP request outcome unknown"


class TooManyRedirects(OutboundError):
    """The answer redirected more times than the block follows."""

    code = "too_many_redirects"
    title = "Too many redirects"


class AnswerTooLarge(OutboundError):
    """The answer is longer than the server reads (``HTTP_MAX_ANSWER_BYTES``)."""

    code = "answer_too_large"
    title = "Answer too large"


class AnswerNotJson(OutboundError):
    """The answer is not JSON."""

    code = "answer_not_json"
    title = "Answer is not JSON"


class TemplateMissingColumn(OutboundError):
    """A template names a column the table does not have (found only at run time, when
    the columns were not known when the definition was saved)."""

    code = "template_missing_column"
    title = "Template names a missing column"
