#!/usr/bin/env bash
# Every linter of this collection, in one place: `make lint` and `tox -e lint` both run this
# script, so the list is written once. The tools are the first ones on PATH (the caller puts its
# virtualenv first), and ansible-lint finds the collection on ANSIBLE_COLLECTIONS_PATH, which the
# caller points at this checkout. Every linter runs even if an earlier one failed; the exit
# status is the first failure's.
#
# Usage: tests/lint.sh
set -uo pipefail
cd "$(dirname "$0")/.." || exit

status=0
lint() {
    echo "--- $*"
    "$@"
    local rc=$?
    if [[ $status -eq 0 && $rc -ne 0 ]]; then
        status=$rc
    fi
}

lint yamllint --strict .
lint ansible-lint --offline
lint ruff check tests bench tools
lint ruff format --check tests bench tools
lint shellcheck tests/sanity.sh tests/lint.sh .ci/run
lint antsibull-changelog lint
exit "$status"
