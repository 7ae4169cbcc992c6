#!/usr/bin/env bash
# One CI step, with nothing but the P-pruning client (`pip install ./ppruning_client`, no torch):
# submit a pipeline job whose spec has quality gates ("accept"), follow it to the end, fail the
# step when a gate rejects the pruned model, and leave the checkpoint for the CI to upload.
# The GitHub Actions workflow and the GitLab CI job beside this file both run it.
#
#   PPRUNING_URL, PPRUNING_API_KEY   the service and a key (ppruning apikey create NAME)
#   $1 or PPRUNING_SPEC              the job spec (JSON), e.g. a pipeline with "accept"
#   PPRUNING_OUT                     where the results go (default ppruning-out)
#   PPRUNING_TIMEOUT_S               how long to wait for the job (default 7200)
#   PPRUNING_IDEMPOTENCY_KEY         a rerun of the same CI run gets the same job, not a second one
#   PPRUNING_CLIENT                  the client command (default ppruning-client)
#
# Exit codes are the client's: 0 the gate passed (model.tar.gz, README.md, report.json and
# job.json in PPRUNING_OUT), 4 a gate rejected the model (job.json says why), 1 the job failed
# or was cancelled, 2 a refused spec or another service error, 3 the wait timed out, 5 the
# service could not be reached.
set -euo pipefail

: "${PPRUNING_URL:?set PPRUNING_URL to the service, e.g. https://pruning.example.com}"
: "${PPRUNING_API_KEY:?set PPRUNING_API_KEY (a CI secret)}"
spec="${1:-${PPRUNING_SPEC:-ppruning-job.json}}"
out="${PPRUNING_OUT:-ppruning-out}"
read -r -a client <<< "${PPRUNING_CLIENT:-ppruning-client}"
key=()
if [[ -n "${PPRUNING_IDEMPOTENCY_KEY:-}" ]]; then key=(--idempotency-key "$PPRUNING_IDEMPOTENCY_KEY"); fi

mkdir -p "$out"
job=$("${client[@]}" submit "$spec" --quiet "${key[@]}")
echo "$job" > "$out/job-id"
echo "submitted job $job" >&2

status=0
"${client[@]}" wait "$job" --timeout "${PPRUNING_TIMEOUT_S:-7200}" --json > "$out/job.json" || status=$?

if [[ $status -eq 0 || $status -eq 4 ]]; then
    # the report and the model card say what was pruned and at what cost, whatever the verdict
    "${client[@]}" download "$job" report.json --output "$out/report.json"
    "${client[@]}" download "$job" README.md --output "$out/README.md"
fi
case $status in
    0)
        "${client[@]}" download "$job" model.tar.gz --output "$out/model.tar.gz"
        echo "quality gate passed: the checkpoint is $out/model.tar.gz" >&2 ;;
    4) echo "quality gate rejected the pruned model: see result.gate.reasons in $out/job.json" >&2 ;;
    *) echo "job $job did not succeed (client exit $status)" >&2 ;;
esac
exit "$status"
