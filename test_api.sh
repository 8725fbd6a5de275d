#!/usr/bin/env bash
# End-to-end check of the workflow engine's REST API against a running server.
#
#   ./test_api.sh [BASE_URL]        (default http://127.0.0.1:5000)
#
# Needs only curl and python3 (python3 reads the JSON; no jq). Every step asserts status
# codes, headers and fields, prints "ok  - <step>" and the run ends with "N passed, 0 failed".
# The first unexpected answer stops the run with "not ok - <step>: <why>", the response,
# and a non-zero exit status. Ids and file names get a random suffix, so the script can run
# again and again against the same server. The enrichment step enriches 5 made-up rows
# through the server's enrichment: free against its sandbox (no SIXTYFOUR_API_KEY), but 5
# real enrichments against a server with a key. The data-pipeline steps upload small CSV files,
# so the server's files directory (FILES_DIR) must be writable.
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

# expect_csv EXPR EXPECTED: like expect, over the body parsed as CSV: `r` is its list of rows
# (the header first).
expect_csv() {
    local actual
    actual="$(python3 - "$BODY" "$1" 2>"$WORK/py.err" <<'PY'
import csv
import json
import sys

with open(sys.argv[1], encoding="utf-8", newline="") as handle:
    r = list(csv.reader(handle))
value = eval(sys.argv[2], {"r": r})
print(value if isinstance(value, str) else json.dumps(value))
PY
)" || fail "cannot read $1 from the CSV body: $(tail -1 "$WORK/py.err")"
    [[ "$actual" == "$2" ]] || fail "expected $1 == $2, got $actual"
}

# events EXPR: evaluates a Python expression over the body read as Server-Sent Events: `e`
# is the list of its events, each {"event", "id", "data"} (data parsed as JSON).
events() {
    python3 - "$BODY" "$1" <<'PY'
import json
import sys

found, current = [], {}
with open(sys.argv[1], encoding="utf-8") as handle:
    for line in handle.read().split("\n"):
        if not line:
            if "data" in current:
                found.append({"event": current.get("event", "message"), "id": current.get("id"),
                              "data": json.loads(current["data"])})
            current = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            current[name] = value
value = eval(sys.argv[2], {"e": found})
print(value if isinstance(value, str) else json.dumps(value))
PY
}

# expect_events EXPR EXPECTED: like expect, over the body read as an event stream.
expect_events() {
    local actual
    actual="$(events "$1" 2>"$WORK/py.err")" || fail "cannot read $1 from the event stream: $(tail -1 "$WORK/py.err")"
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

# The data pipeline: a CSV uploaded under a unique name, read, filtered and saved under
# another unique name. The filter keeps company containing "ariglad" (case-insensitive) and
# score >= 50 (compared as numbers: "9" < "50"): Ann and Cid of five rows.
UPLOAD_NAME="api-test-${SUFFIX}.csv"
OUTPUT_NAME="api-test-out-${SUFFIX}.csv"
PIPELINE_ID="api-test-pipeline-${SUFFIX}"
PIPELINE_INSTANCE="api-test-run-${SUFFIX}"
UPLOAD_FILE="$WORK/upload.csv"
printf '%s\n' 'name,company,score' 'Ann,Ariglad Inc,72' 'Bob,Northwind,88' 'Cid,ARIGLAD Labs,50' \
    'Dee,Ariglad Inc,9' 'Eve,Ariglad Inc,' >"$UPLOAD_FILE"
BROKEN_FILE="$WORK/broken.csv"
printf '%s\n' 'name,score' 'Ann,72' 'Bob,88,extra' >"$BROKEN_FILE"

pipeline() {  # pipeline ID FILTER_COLUMN: a definition reading the upload, filtering, saving
    echo '{
  "id": "'"$1"'",
  "name": "API test pipeline",
  "states": [
    {"id": "ready", "name": "Ready", "is_initial": true},
    {"id": "reading", "name": "Reading", "block": {"type": "read_csv", "params": {"file": "'"$UPLOAD_NAME"'"}}},
    {"id": "filtering", "name": "Filtering", "block": {"type": "filter", "params": {"conditions": [
      {"column": "company", "operator": "contains", "value": "ariglad"},
      {"column": "'"$2"'", "operator": "gte", "value": 50}]}}},
    {"id": "saved", "name": "Saved", "is_final": true,
     "block": {"type": "save_csv", "params": {"file_name": "'"$OUTPUT_NAME"'"}}}
  ],
  "actions": [
    {"id": "run", "name": "Run", "from_states": ["ready"], "to_state": "reading"},
    {"id": "filter", "name": "Filter", "trigger": "auto", "from_states": ["reading"], "to_state": "filtering"},
    {"id": "save", "name": "Save", "trigger": "auto", "from_states": ["filtering"], "to_state": "saved",
     "condition": {"conditions": [{"fact": "row_count", "operator": "gt", "value": 0}]}}
  ]
}'
}

enrichment() {  # enrichment ID: read the upload, enrich each lead, save
    echo '{
  "id": "'"$1"'",
  "name": "API test enrichment",
  "states": [
    {"id": "ready", "name": "Ready", "is_initial": true},
    {"id": "reading", "name": "Reading", "block": {"type": "read_csv", "params": {"file": "'"$UPLOAD_NAME"'"}}},
    {"id": "enriching", "name": "Enriching", "block": {"type": "enrich_lead", "params": {"struct": {
      "education": "Educational background including undergraduate university",
      "is_american_education": {"description": "Studied in the US?", "type": "bool"}}}}},
    {"id": "saved", "name": "Saved", "is_final": true,
     "block": {"type": "save_csv", "params": {"file_name": "enriched-'"$OUTPUT_NAME"'"}}}
  ],
  "actions": [
    {"id": "run", "name": "Run", "from_states": ["ready"], "to_state": "reading"},
    {"id": "enrich", "name": "Enrich", "trigger": "auto", "from_states": ["reading"], "to_state": "enriching"},
    {"id": "save", "name": "Save", "trigger": "auto", "from_states": ["enriching"], "to_state": "saved"}
  ]
}'
}

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

STEP="live events of an active instance"
# The stream of an instance that is not finished stays open: curl stops it (exit 28), by
# then it has printed what the server flushed.
: >"$BODY"
: >"$HEADERS"
CODE=0
curl -sN --max-time 2 -o "$BODY" -D "$HEADERS" "${BASE_URL}/api/instances/${INSTANCE_ID}/events" || CODE=$?
[[ "$CODE" == 28 ]] || fail "expected curl to stop the open stream (exit 28), got exit $CODE"
[[ "$(header Content-Type)" == text/event-stream* ]] || fail "expected text/event-stream, got '$(header Content-Type)'"
expect_events "[(x['event'], x['id']) for x in e]" '[["history", "1"], ["history", "2"], ["history", "3"], ["instance", "3.0"]]'
expect_events "e[-1]['data']['current_state']" "draft"
request GET "/api/instances/${INSTANCE_ID}/events" -H 'Last-Event-ID: soon'
expect_problem 400 invalid_event_id
pass "events: curl -N --max-time 2 gets history 1-3 and the instance, live (a bad Last-Event-ID: 400)"

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

# -- data pipeline --------------------------------------------------------------------------

STEP="block catalog"
request GET /api/blocks
expect_status 200
expect "all(t in [b['type'] for b in d['items']] for t in ('read_csv', 'filter', 'save_csv'))" "true"
expect "[b['needs_table'] for b in d['items'] if b['type'] == 'read_csv']" "[false]"
pass "block catalog GET /api/blocks (200, read_csv, filter, save_csv)"

STEP="upload a CSV"
request POST /api/files -F "file=@${UPLOAD_FILE};filename=${UPLOAD_NAME};type=text/csv"
expect_status 201
expect_header Location "/api/files/${UPLOAD_NAME}"
expect "d['name']" "$UPLOAD_NAME"
expect "d['columns']" '["name", "company", "score"]'
expect "d['row_count']" "5"
expect "[row['name'] for row in d['preview']]" '["Ann", "Bob", "Cid", "Dee", "Eve"]'
request GET /api/files
expect_status 200
expect "'${UPLOAD_NAME}' in [f['name'] for f in d['items']]" "true"
pass "upload ${UPLOAD_NAME} (201, 3 columns, row_count 5, listed)"

STEP="upload a broken CSV"
request POST /api/files -F "file=@${BROKEN_FILE};filename=broken-${UPLOAD_NAME};type=text/csv"
expect_problem 422 csv_invalid
request GET "/api/files/broken-${UPLOAD_NAME}"
expect_problem 404 file_not_found
pass "upload a broken CSV (422 csv_invalid, nothing stored)"

STEP="upload under a hostile name"
request POST /api/files -F "file=@${UPLOAD_FILE};filename=x.csv;type=text/csv" -F 'name=../x.csv'
expect_problem 400 invalid_path
pass "upload named ../x.csv (400 invalid_path)"

STEP="check a pipeline before saving it"
send_json POST /api/definitions/validate "$(pipeline "$PIPELINE_ID" score)"
expect_status 200
expect "(d['valid'], d['errors'], d['warnings'])" '[true, [], []]'
expect "d['states']['reading']['columns_in']" '{"columns": null, "no_table": true, "tables": []}'
expect "d['states']['filtering']['columns_in']['columns']" '["name", "company", "score"]'
request GET "/api/definitions/${PIPELINE_ID}"
expect_problem 404 definition_not_found
pass "POST /api/definitions/validate (200 valid, the upload's columns at the filter, nothing stored)"

STEP="create a pipeline definition"
send_json POST /api/definitions "$(pipeline "$PIPELINE_ID" score)"
expect_status 201
expect "[s['block']['type'] for s in d['states'] if s['block']]" '["read_csv", "filter", "save_csv"]'
expect "[a['trigger'] for a in d['actions']]" '["manual", "auto", "auto"]'
expect "d['warnings']" "[]"
pass "create pipeline definition (201, read_csv -> filter -> save_csv)"

STEP="run the pipeline"
send_json POST /api/instances '{"definition_id": "'"$PIPELINE_ID"'", "id": "'"$PIPELINE_INSTANCE"'"}'
expect_status 201
expect "d['status']" "active"
expect "d['table']" "null"
request POST "/api/instances/${PIPELINE_INSTANCE}/actions/run?wait=10" -H 'X-Actor: alice'
expect_status 200
expect "d['current_state']" "saved"
expect "d['status']" "completed"
expect "d['error']" "null"
expect "d['table']['rows']" "2"
expect "d['table']['columns']" '["name", "company", "score"]'
pass "fire run?wait=10 (200, completed in saved, table.rows 2)"

STEP="pipeline history"
request GET "/api/instances/${PIPELINE_INSTANCE}/history"
expect_status 200
expect "[e['type'] for e in d['items'] if e['type'].startswith('block_')]" \
    '["block_started", "block_succeeded", "block_started", "block_succeeded", "block_started", "block_succeeded"]'
expect "[e['data']['rows_out'] for e in d['items'] if e['type'] == 'block_succeeded']" '[5, 2, 2]'
expect "[(e['action_id'], (e['data'] or {}).get('trigger')) for e in d['items'] if e['type'] == 'action_fired']" \
    '[["run", null], ["filter", "auto"], ["save", "auto"]]'
READ_SEQ="$(json "[e['seq'] for e in d['items'] if e['type'] == 'block_succeeded' and e['from_state'] == 'reading'][0]")"
pass "history (3 block_succeeded: 5, 2, 2 rows; auto actions marked)"

STEP="pipeline events"
# A completed instance's stream sends everything, then `end`, and closes by itself.
request GET "/api/instances/${PIPELINE_INSTANCE}/events" -N
expect_status 200
expect_events "[x['data']['seq'] for x in e if x['event'] == 'history'] == list(range(1, len(e) - 1))" "true"
expect_events "[x['event'] for x in e[-2:]]" '["instance", "end"]'
expect_events "e[-1]['data']['status']" "completed"
LAST_EVENT_ID="$(events "e[-1]['id']")"
request GET "/api/instances/${PIPELINE_INSTANCE}/events" -H "Last-Event-ID: ${LAST_EVENT_ID}"
expect_status 204
pass "events of the completed pipeline: every history event, instance, end; then 204 at its last id"

STEP="current table"
request GET "/api/instances/${PIPELINE_INSTANCE}/data"
expect_status 200
expect "d['total_rows']" "2"
expect "d['columns']" '["name", "company", "score"]'
expect "d['rows']" '[{"name": "Ann", "company": "Ariglad Inc", "score": "72"}, {"name": "Cid", "company": "ARIGLAD Labs", "score": "50"}]'
request GET "/api/instances/${PIPELINE_INSTANCE}/data?format=csv"
expect_status 200
[[ "$(header Content-Type)" == text/csv* ]] || fail "expected text/csv, got '$(header Content-Type)'"
expect_csv "r" '[["name", "company", "score"], ["Ann", "Ariglad Inc", "72"], ["Cid", "ARIGLAD Labs", "50"]]'
pass "GET .../data (200, the 2 filtered rows; also as CSV)"

STEP="table after the read"
request GET "/api/instances/${PIPELINE_INSTANCE}/history/${READ_SEQ}/data"
expect_status 200
expect "d['total_rows']" "5"
expect "[row['name'] for row in d['rows']]" '["Ann", "Bob", "Cid", "Dee", "Eve"]'
expect "d['rows'][4]['score']" "null"
pass "GET .../history/${READ_SEQ}/data (200, all 5 rows as read)"

STEP="output file"
request GET /api/outputs
expect_status 200
expect "'${OUTPUT_NAME}' in [f['name'] for f in d['items']]" "true"
request GET "/api/outputs/${OUTPUT_NAME}"
expect_status 200
[[ "$(header Content-Type)" == text/csv* ]] || fail "expected text/csv, got '$(header Content-Type)'"
expect_csv "r" '[["name", "company", "score"], ["Ann", "Ariglad Inc", "72"], ["Cid", "ARIGLAD Labs", "50"]]'
pass "output ${OUTPUT_NAME} listed and downloaded (2 rows)"

STEP="retry and cancel with nothing to do"
request POST "/api/instances/${PIPELINE_INSTANCE}/retry"
expect_problem 409 nothing_to_retry
request POST "/api/instances/${PIPELINE_INSTANCE}/cancel"
expect_problem 409 not_running
pass "retry / cancel of a completed instance (409 nothing_to_retry, not_running)"

STEP="filter on a column the file does not have"
send_json POST /api/definitions "$(pipeline "${PIPELINE_ID}-bad" revenue)"
expect_problem 422 definition_invalid
expect "[(e['path'], e['code']) for e in d['errors']]" '[["states[2].block.params", "unknown_column"]]'
pass "filter on a column not in the file's header (422, unknown_column)"

STEP="check a filter on a column the file does not have"
send_json POST /api/definitions/validate "$(pipeline "${PIPELINE_ID}-bad" revenue)"
expect_status 200
expect "d['valid']" "false"
expect "[(e['path'], e['code']) for e in d['errors']]" '[["states[2].block.params", "unknown_column"]]'
send_json POST /api/definitions/validate "$(enrichment "${PIPELINE_ID}-enrich")"
expect "d['valid']" "true"
expect "d['states']['enriching']['columns_out']['columns'][3:5]" '["education", "is_american_education"]'
pass "check of the same filter (200 valid false, the same error); an enrichment adds its struct fields"

STEP="enrich the uploaded leads"
send_json POST /api/definitions "$(enrichment "${PIPELINE_ID}-enrich")"
expect_status 201
send_json POST /api/instances '{"definition_id": "'"${PIPELINE_ID}-enrich"'", "id": "'"${PIPELINE_INSTANCE}-enrich"'"}'
expect_status 201
request POST "/api/instances/${PIPELINE_INSTANCE}-enrich/actions/run?wait=60"
expect_status 200
expect "d['status']" "completed"
expect "d['table']['rows']" "5"
expect "all(c in d['table']['columns'] for c in ('education', 'is_american_education', 'enrich_error'))" "true"
request GET "/api/instances/${PIPELINE_INSTANCE}-enrich/data"
expect_status 200
expect "all(r['enrich_error'] is None and r['education'] for r in d['rows'])" "true"
expect "sorted({type(r['is_american_education']).__name__ for r in d['rows']})" '["bool"]'
pass "enrich_lead over 5 rows (completed, struct fields written, bool cast)"

# -- triggers -------------------------------------------------------------------------------
# The shipped leads-webhook definition: its webhook starts an instance on the posted rows,
# which are read, filtered to the leads at Ariglad and saved. Its token is made anew here
# (the one issued when the server loaded the file was shown to nobody).

STEP="list triggers"
request GET /api/triggers
expect_status 200
expect "[(t['type'], t['hook_url'].endswith('/api/hooks/leads-webhook/leads')) for t in d['items'] if t['definition_id'] == 'leads-webhook']" '[["webhook", true]]'
HOOK_URL="$(json "[t['hook_url'] for t in d['items'] if t['definition_id'] == 'leads-webhook'][0]")"
HOOK_PATH="/api/hooks/leads-webhook/leads"
LAST_HOOK_INSTANCE="$(json "[t['last_instance_id'] for t in d['items'] if t['definition_id'] == 'leads-webhook'][0]")"
pass "GET /api/triggers (200, the leads-webhook webhook with its hook URL)"

STEP="make a webhook token"
request POST /api/definitions/leads-webhook/triggers/leads/token
expect_status 200
expect "d['hook_url']" "$HOOK_URL"
HOOK_TOKEN="$(json "d['token']")"
[[ ${#HOOK_TOKEN} -ge 40 ]] || fail "a short token: ${HOOK_TOKEN}"
pass "POST .../triggers/leads/token (200, a new token, shown once)"

HOOK_FILE="$WORK/hook.csv"
printf '%s\n' 'name,company,email' 'Ann Lee,Ariglad Inc,ann@ariglad.example' \
    'Bo Kim,Northwind,' 'Cid Roe,Ariglad Inc,' >"$HOOK_FILE"

STEP="webhook with a wrong token"
request POST "$HOOK_PATH" -H 'Content-Type: text/csv' -H 'Authorization: Bearer wrong-token' \
    --data-binary "@${HOOK_FILE}"
expect_problem 401 hook_unauthorized
request GET /api/triggers
expect "[t['last_instance_id'] for t in d['items'] if t['definition_id'] == 'leads-webhook'][0]" \
    "$LAST_HOOK_INSTANCE"
pass "POST ${HOOK_PATH} with a wrong token (401 hook_unauthorized, nothing started)"

STEP="post a CSV to the webhook"
request POST "$HOOK_PATH" -H 'Content-Type: text/csv' -H "Authorization: Bearer ${HOOK_TOKEN}" \
    --data-binary "@${HOOK_FILE}"
expect_status 201
HOOK_INSTANCE="$(json "d['id']")"
expect_header Location "/api/instances/${HOOK_INSTANCE}"
HOOK_DIGEST="$(sha256sum "$HOOK_FILE" | cut -c1-16)"
expect "d['inputs']" '{"reading": {"file": "hook-'"$HOOK_INSTANCE"'-'"$HOOK_DIGEST"'.csv"}}'
request GET "/api/instances/${HOOK_INSTANCE}?wait=10"
expect_status 200
expect "(d['status'], d['current_state'], d['table']['rows'])" '["completed", "saved", 2]'
request GET "/api/instances/${HOOK_INSTANCE}/history"
expect "(d['items'][0]['type'], d['items'][0]['actor'])" '["instance_started", "webhook:leads"]'
pass "POST ${HOOK_PATH} text/csv (201; ran to saved on the 2 Ariglad rows; actor webhook:leads)"

STEP="post JSON rows to the webhook"
send_json POST "$HOOK_PATH" '{"rows": [{"name": "Dee", "company": "Ariglad Inc"}, {"name": "Eve", "company": "Other"}]}' \
    -H "X-Hook-Token: ${HOOK_TOKEN}"
expect_status 201
HOOK_INSTANCE="$(json "d['id']")"
request GET "/api/instances/${HOOK_INSTANCE}?wait=10"
expect "(d['status'], d['table']['rows'], d['table']['columns'])" '["completed", 1, ["name", "company"]]'
send_json POST "$HOOK_PATH" '{"rows": [{"name": ["nested"]}]}' -H "X-Hook-Token: ${HOOK_TOKEN}"
expect_problem 422 hook_rows_invalid
expect "[e['path'] for e in d['errors']]" '["rows[0].name"]'
pass "POST ${HOOK_PATH} JSON rows (201, completed on 1 row; a nested value 422 at rows[0].name)"

STEP="a schedule with a cron that does not parse"
send_json POST /api/definitions/validate '{"id": "api-test-schedule-'"$SUFFIX"'", "name": "S",
  "states": [{"id": "a", "name": "A", "is_initial": true, "is_final": true}],
  "triggers": [{"id": "nightly", "type": "schedule", "cron": "0 25 * * *"}]}'
expect_status 200
expect "[(e['path'], e['code']) for e in d['errors']]" '[["triggers[0].cron", "invalid_cron"]]'
pass "a schedule trigger's cron '0 25 * * *' (invalid_cron at triggers[0].cron)"

echo "${PASSED} passed, 0 failed"
