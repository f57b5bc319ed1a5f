#!/usr/bin/env bash
# Static checks of infra/ (no terraform binary, no GCP access needed):
#   1. every *.tf parses with python-hcl2, and the wiring rules of
#      event_assets_tests/test_infra.py hold (env names, IAM, ack deadline, the one root
#      infra/live with each environment's backend config and tfvars);
#   2. checkov on the Terraform, zero failed checks (skips are inline, each with a reason);
#   3. checkov on the Dockerfile, zero failed checks.
# checkov runs in its own tool environment (`uv tool run`), not in the project venv: it pins
# bc-python-hcl2, which installs the same `hcl2` package as python-hcl2 and breaks it, and
# its exact pins (packaging==23.2, ...) would downgrade runtime dependencies in uv.lock.
# Exits non-zero if any step fails; runs all of them either way.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
read -r -a UV_CMD <<<"${UV:-uv}" # the Makefile may pass UV="python3 -m uv"
CHECKOV=("${UV_CMD[@]}" tool run --from "checkov==${CHECKOV_VERSION:-3.3.30}" checkov)
status=0

run() {
  echo "+ $*"
  "$@" || status=1
}

run "${UV_CMD[@]}" run pytest event_assets_tests/test_infra.py -q -p no:cacheprovider
run "${CHECKOV[@]}" -d infra --framework terraform --quiet --compact --skip-download
run "${CHECKOV[@]}" -f Dockerfile --framework dockerfile --quiet --compact --skip-download

if [ "$status" -ne 0 ]; then
  echo "infra checks FAILED" >&2
fi
exit "$status"
