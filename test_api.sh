#!/usr/bin/env bash
# End-to-end check of the workflow engine's REST API against a running server.
#
#   ./test_api.sh [BASE_URL]        (default http://127.0.0.1:5000)
#
# Needs only curl and python3 (python3 reads the JSON; no jq). Every step asserts status
# codes, headers and fields, prints "ok  - <step>" and the run ends with "N passed, 0 failed".
# The first unexpected answer stops the run with "not ok - <step>: <why>", the response,
# and a non-zero exit status. Ids get a random suffix, so the script can run again and again
# against the same server.
set -euo pipefail

BASE_URL="${1:-http://127.0.0.1:5000}"
BASE_URL="${BASE_URL%/}"

for tool in curl python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool is required" >&2; exit 2; }
done

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
BODY="$WORK/body"
HEADERS="$WORK/headers"
STATUS=""
PASSED=0
STEP=""

# -- helpers ------------------------------------------------------------------------------

fail() {
    echo "not ok - ${STEP}: $*"
    if [[ -s "$BODY" ]]; then
        echo "  response (HTTP ${STATUS:-?}): $(head -c 1500 "$BODY")"
    fi
    echo "${PASSED} passed, 1 failed"
    exit 1
}

pass() {
    PASSED=$((PASSED + 1))
    echo "ok  - $1"
}

# request METHOD PATH [curl options...]: sets STATUS, writes $BODY and $HEADERS.
request() {
    local method="$1" path="$2"
    shift 2
    : >"$BODY"
    : >"$HEADERS"
    if ! STATUS="$(curl -sS --max-time 15 -X "$method" -o "$BODY" -D "$HEADERS" \
            -w '%{http_code}' "$@" "${BASE_URL}${path}" 2>"$WORK/curl.err")"; then
        fail "cannot reach ${BASE_URL}${path}: $(cat "$WORK/curl.err")"
    fi
}

# send_json METHOD PATH JSON [curl options...]
send_json() {
    local method="$1" path="$2" data="$3"
    shift 3
    request "$method" "$path" -H 'Content-Type: application/json' --data-binary "$data" "$@"
}

expect_status() {
    [[ "$STATUS" == "$1" ]] || fail "expected HTTP $1, got HTTP $STATUS"
}

# header NAME: the value of a response header (last one if repeated), without CR.
header() {
    awk -v name="$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]')" '
        { sub(/\r$/, "") }
        index($0, ":") {
            key = tolower(substr($0, 1, index($0, ":") - 1))
            if (key == name) { value = substr($0, index($0, ":") + 1); sub(/^[ \t]+/, "", value) }
        }
        END { print value }' "$HEADERS"
}

expect_header() {
    local actual
    actual="$(header "$1")"
    [[ "$actual" == "$2" ]] || fail "expected header $1: '$2', got '$actual'"
}

# json EXPR: evaluates a Python expression over the response body parsed as `d`; prints
# strings as they are and anything else as JSON.
json() {
    python3 - "$BODY" "$1" <<'PY'
import json
import sys

with open(sys.argv[1], encoding="utf-8") as handle:
    d = json.load(handle)
value = eval(sys.argv[2], {"d": d})
print(value if isinstance(value, str) else json.dumps(value))
PY
}

# expect EXPR EXPECTED: the body's EXPR (see json) must print exactly EXPECTED.
expect() {
    local actual
    actual="$(json "$1" 2>"$WORK/py.err")" || fail "cannot read $1 from the body: $(tail -1 "$WORK/py.err")"
    [[ "$actual" == "$2" ]] || fail "expected $1 == $2, got $actual"
}

expect_problem() {  # expect_problem STATUS CODE
    expect_status "$1"
    [[ "$(header Content-Type)" == application/problem+json* ]] \
        || fail "expected Content-Type application/problem+json, got '$(header Content-Type)'"
    expect "d['status']" "$1"
    expect "d['code']" "$2"
    expect "d['type']" "urn:workflow-engine:problem:$2"
}

# -- test data ------------------------------------------------------------------------------

SUFFIX="$(python3 -c 'import uuid; print(uuid.uuid4().hex[:12])')"
DEF_ID="api-test-${SUFFIX}"
INSTANCE_ID="api-test-instance-${SUFFIX}"
IDEMPOTENCY_KEY="api-test-key-${SUFFIX}"

# camelCase on input (isInitial, fromStates, toState) on purpose: the API accepts both.
DEFINITION='{
  "id": "'"$DEF_ID"'",
  "name": "API test review",
  "description": "Created by test_api.sh",
  "states": [
    {"id": "draft", "name": "Draft", "isInitial": true},
    {"id": "review", "name": "In review"},
    {"id": "approved", "name": "Approved", "isFinal": true},
    {"id": "rejected", "name": "Rejected", "is_final": true}
  ],
  "actions": [
    {"id": "submit", "name": "Submit", "fromStates": ["draft"], "toState": "review"},
    {"id": "approve", "name": "Approve", "from_states": ["review"], "to_state": "approved"},
    {"id": "reject", "name": "Reject", "from_states": ["review"], "to_state": "rejected"},
    {"id": "rework", "name": "Send back", "from_states": ["review"], "to_state": "draft"}
  ]
}'

# -- steps ----------------------------------------------------------------------------------

echo "# testing ${BASE_URL} (definition ${DEF_ID})"

STEP="liveness"
request GET /health
expect_status 200
expect "d['status']" "ok"
pass "liveness GET /health (200)"

STEP="readiness"
request GET /api/health
expect_status 200
expect "d['status']" "ok"
expect "d['database']" "ok"
pass "readiness GET /api/health (200, database ok)"

STEP="create definition"
send_json POST /api/definitions "$DEFINITION"
expect_status 201
expect "d['id']" "$DEF_ID"
expect "d['version']" "1"
expect "[s['id'] for s in d['states'] if s['is_initial']]" '["draft"]'
expect "d['warnings']" "[]"
expect_header Location "/api/definitions/${DEF_ID}?version=1"
pass "create definition (201, version 1)"

STEP="re-POST identical definition"
send_json POST /api/definitions "$DEFINITION"
expect_status 200
expect "d['id']" "$DEF_ID"
expect "d['version']" "1"
pass "re-POST identical definition (200, same version 1)"

STEP="POST changed definition under the same id"
send_json POST /api/definitions "${DEFINITION/API test review/API test review, renamed}"
expect_problem 409 definition_exists
expect "d['latest_version']" "1"
pass "POST changed definition under the same id (409 definition_exists)"

STEP="invalid definition"
send_json POST /api/definitions '{
  "id": "api-test-invalid-'"$SUFFIX"'", "name": "Broken",
  "states": [{"id": "a", "name": "A", "is_initial": true}, {"id": "b", "name": "B", "is_final": true}],
  "actions": [{"id": "go", "name": "Go", "from_states": ["a"], "to_state": "nowhere"}]
}'
expect_problem 422 definition_invalid
expect "[(e['path'], e['code']) for e in d['errors']]" '[["actions[0].to_state", "unknown_state"]]'
pass "invalid definition (422 definition_invalid, errors[0].path actions[0].to_state)"

STEP="start instance"
send_json POST /api/instances '{"definition_id": "'"$DEF_ID"'", "id": "'"$INSTANCE_ID"'", "context": {"suffix": "'"$SUFFIX"'"}}' \
    -H 'X-Actor: alice'
expect_status 201
expect_header Location "/api/instances/${INSTANCE_ID}"
expect_header ETag '"1"'
expect "d['id']" "$INSTANCE_ID"
expect "d['definition_version']" "1"
expect "d['current_state']" "draft"
expect "d['status']" "active"
expect "d['context']['suffix']" "$SUFFIX"
pass "start instance (201, Location, current_state draft)"

STEP="get instance"
request GET "/api/instances/${INSTANCE_ID}"
expect_status 200
ETAG="$(header ETag)"
[[ "$ETAG" == '"1"' ]] || fail "expected ETag \"1\", got '$ETAG'"
expect "d['version']" "1"
expect "d['current_state']" "draft"
expect "[a['id'] for a in d['available_actions']]" '["submit"]'
pass "get instance (200, ETag $ETAG)"

STEP="list available actions"
request GET "/api/instances/${INSTANCE_ID}/actions"
expect_status 200
expect "d['current_state']" "draft"
expect "d['is_final']" "false"
expect "[(a['id'], a['to_state']) for a in d['actions']]" '[["submit", "review"]]'
pass "list available actions (200, submit -> review)"

STEP="fire submit"
request POST "/api/instances/${INSTANCE_ID}/actions/submit" -H 'X-Actor: alice' -H "If-Match: ${ETAG}"
expect_status 200
expect_header ETag '"2"'
expect "d['current_state']" "review"
expect "d['version']" "2"
expect "sorted(a['id'] for a in d['available_actions'])" '["approve", "reject", "rework"]'
pass "fire submit with If-Match (200, current_state review)"

STEP="fire an action not available in the current state"
request POST "/api/instances/${INSTANCE_ID}/actions/submit" -H 'X-Actor: alice'
expect_problem 409 action_not_available_from_state
expect "d['current_state']" "review"
expect "d['action_id']" "submit"
pass "fire submit again from review (409 action_not_available_from_state)"

STEP="fire an unknown action"
request POST "/api/instances/${INSTANCE_ID}/actions/publish"
expect_problem 404 action_not_found
pass "fire unknown action (404 action_not_found)"

STEP="fire with a stale If-Match"
request POST "/api/instances/${INSTANCE_ID}/actions/approve" -H 'If-Match: "1"'
expect_problem 412 precondition_failed
expect "d['current_etag']" '"2"'
request GET "/api/instances/${INSTANCE_ID}"
expect_status 200
expect "d['current_state']" "review"
pass "fire with stale If-Match (412 precondition_failed, nothing changed)"

STEP="fire with an Idempotency-Key"
request POST "/api/instances/${INSTANCE_ID}/actions/rework" -H 'X-Actor: bob' \
    -H "Idempotency-Key: ${IDEMPOTENCY_KEY}"
expect_status 200
expect "d['current_state']" "draft"
expect "d['version']" "3"
FIRST_UPDATED="$(json "d['updated_at']")"
request GET "/api/instances/${INSTANCE_ID}/history"
expect_status 200
EVENTS_BEFORE="$(json "len(d['items'])")"
pass "fire rework with Idempotency-Key (200, current_state draft)"

STEP="retry with the same Idempotency-Key"
request POST "/api/instances/${INSTANCE_ID}/actions/rework" -H 'X-Actor: bob' \
    -H "Idempotency-Key: ${IDEMPOTENCY_KEY}"
expect_status 200
expect_header Idempotent-Replayed "true"
expect_header ETag '"3"'
expect "d['current_state']" "draft"
expect "d['version']" "3"
expect "d['updated_at']" "$FIRST_UPDATED"
request GET "/api/instances/${INSTANCE_ID}/history"
expect_status 200
expect "len(d['items'])" "$EVENTS_BEFORE"
pass "retry with same Idempotency-Key (200, replayed, history still ${EVENTS_BEFORE} events)"

STEP="history"
request GET "/api/instances/${INSTANCE_ID}/history"
expect_status 200
expect "d['instance_id']" "$INSTANCE_ID"
expect "[e['seq'] for e in d['items']]" '[1, 2, 3]'
expect "[e['type'] for e in d['items']]" '["instance_started", "action_fired", "action_fired"]'
expect "[e['action_id'] for e in d['items']]" '[null, "submit", "rework"]'
expect "[(e['from_state'], e['to_state']) for e in d['items']]" \
    '[[null, "draft"], ["draft", "review"], ["review", "draft"]]'
expect "[e['actor'] for e in d['items']]" '["alice", "alice", "bob"]'
expect "all(e['at'].endswith('Z') and len(e['at']) == 24 for e in d['items'])" "true"
expect "d['next_cursor']" "null"
pass "history (200, started -> submit -> rework, actors from X-Actor)"

STEP="history pagination"
request GET "/api/instances/${INSTANCE_ID}/history?limit=2"
expect_status 200
expect "[e['seq'] for e in d['items']]" '[1, 2]'
CURSOR="$(json "d['next_cursor']")"
[[ -n "$CURSOR" && "$CURSOR" != "null" ]] || fail "expected a next_cursor"
request GET "/api/instances/${INSTANCE_ID}/history?limit=2&cursor=${CURSOR}"
expect_status 200
expect "[e['seq'] for e in d['items']]" '[3]'
expect "d['next_cursor']" "null"
pass "history pagination (limit=2, next_cursor)"

STEP="PUT a new definition version"
send_json PUT "/api/definitions/${DEF_ID}" "${DEFINITION/API test review/API test review v2}"
expect_status 201
expect "d['version']" "2"
expect_header Location "/api/definitions/${DEF_ID}?version=2"
request GET "/api/definitions/${DEF_ID}/versions"
expect_status 200
expect "d['versions']" "[1, 2]"
request GET "/api/instances/${INSTANCE_ID}"
expect_status 200
expect "d['definition_version']" "1"
pass "PUT creates version 2 (201), running instance stays on version 1"

STEP="malformed JSON"
send_json POST /api/instances '{"definition_id": '
expect_problem 400 malformed_json
pass "malformed JSON (400 malformed_json, application/problem+json)"

STEP="shipped document-approval definition"
request GET /api/definitions/document-approval
expect_status 200
expect "d['id']" "document-approval"
expect "[s['id'] for s in d['states'] if s['is_initial']]" '["draft"]'
expect "sorted(s['id'] for s in d['states'] if s['is_final'])" '["approved", "rejected"]'
expect "sorted(a['id'] for a in d['actions'])" '["approve", "reject", "request_changes", "submit_for_review"]'
pass "shipped document-approval definition exists (200)"

echo "${PASSED} passed, 0 failed"
