# Entry points. Everything runs from a virtualenv made here from requirements.txt, and the
# collection is reached the way users address it (rstyczynski.ansible.<role>) through a
# collections path that points at this checkout.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
COLLECTIONS := $(CURDIR)/.ansible/collections
LINK := $(COLLECTIONS)/ansible_collections/rstyczynski/ansible
GALAXY_VERSION := $(shell sed -n 's/^version: *//p' galaxy.yml)
# Galaxy's importer runs in a virtualenv of its own (tools/requirements-importer.txt says why).
IMPORTER_VENV := .venv-importer
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)

# The ansible-core matrix needs python3.12 for 2.20 and later. Where pyenv is installed, its
# Python 3.12+ versions go at the END of PATH, so tox finds python3.12 while python3 stays the
# one found first.
empty :=
space := $(empty) $(empty)
PYENV_BINS := $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.1[2-9]*/bin)
ifneq ($(PYENV_BINS),)
export PATH := $(PATH):$(subst $(space),:,$(PYENV_BINS))
endif

# Every supported ansible-core series (tox environments, see tox.ini); CI runs the two ends.
MATRIX := core216,core217,core218,core219,core220,core221
MATRIX_ENDS := core216,core221

.PHONY: demo test lint sanity unit integration remote-deps matrix matrix-ends changelog dist release bench clean

# The main job: the idempotent long-running job on localhost (a 45-second job here), run three
# times. The first run starts the job and saves its id; the second finds the id and re-attaches
# to the same job while it runs; the third waits for it and reports how it ended. The records go
# to a new temporary state directory, removed afterwards, so every demo starts its job, and the
# job has ended when the demo does.
DEMO := $(BIN)/ansible-playbook -i playbooks/inventory.ini playbooks/idempotent_job.yml -e job_seconds=45
demo: $(BIN)/.installed $(LINK)
	@state=$$(mktemp -d) && trap 'rm -rf "$$state"' EXIT && set -e && \
	echo "=== First run: the job is not known yet, so it is started and saved ===" && \
	$(DEMO) -e state_dir="$$state" && \
	echo "=== Second run: the job is found by name and re-attached, not started again; it is still running ===" && \
	$(DEMO) -e state_dir="$$state" && \
	echo "=== Third run: re-attached again, waiting for the job to end; it reports how it ended ===" && \
	$(DEMO) -e state_dir="$$state" -e wait=true

# The whole suite: lint, ansible-test sanity, then every test (unit and integration; among
# them tests/unit/test_importer.py, which runs Galaxy's importer on the built artifact, and
# tests/integration/test_remote.py, which needs the SSH server that remote-deps installs).
test: lint sanity remote-deps $(BIN)/.installed $(LINK) $(IMPORTER_VENV)/.requirements
	$(BIN)/python -m pytest -n 2 --durations=15 tests

# The linters are listed once, in tests/lint.sh (tox's lint environment runs it too).
lint: $(BIN)/.installed $(LINK)
	PATH="$(CURDIR)/$(BIN):$$PATH" tests/lint.sh

# ansible-test sanity on a copy of the tree laid out as ansible_collections/rstyczynski/ansible.
sanity: $(BIN)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" tests/sanity.sh

unit: $(BIN)/.installed $(LINK)
	$(BIN)/python -m pytest tests/unit

integration: remote-deps $(BIN)/.installed $(LINK)
	$(BIN)/python -m pytest tests/integration

# The remote-host tests (tests/integration/test_remote.py) start their own sshd and log in as an
# unprivileged user that becomes a service user with sudo. Installed where it can be: as root,
# with apt-get. Elsewhere nothing is installed, the build goes on and those tests skip, saying why.
REMOTE_PACKAGES := openssh-server sudo acl
remote-deps:
	@if PATH="$$PATH:/usr/sbin:/sbin" command -v sshd >/dev/null && command -v sudo >/dev/null && command -v setfacl >/dev/null; then \
		:; \
	elif [ "$$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then \
		echo "remote-deps: sshd, sudo or setfacl missing, and not root with apt-get: the remote-host tests will skip"; \
	elif apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			$(REMOTE_PACKAGES) >/dev/null; then \
		echo "remote-deps: installed $(REMOTE_PACKAGES)"; \
	else \
		echo "remote-deps: could not install $(REMOTE_PACKAGES): the remote-host tests will skip"; \
	fi

# The whole pytest suite on the newest release of every supported ansible-core series.
matrix: $(BIN)/.installed
	$(BIN)/tox -e $(MATRIX)

# The oldest and the newest supported series only (what CI runs).
matrix-ends: $(BIN)/.installed
	$(BIN)/tox -e $(MATRIX_ENDS)

# CHANGELOG.md and changelogs/changelog.yaml from the fragments, for the version in galaxy.yml
# while that version is not released (tagged) yet; after a release, new fragments wait for the
# next `make release`. The fragments are kept (keep_fragments in changelogs/config.yaml).
changelog: $(BIN)/.installed $(LINK)
	@if git rev-parse --quiet --verify "refs/tags/$(GALAXY_VERSION)" >/dev/null; then \
		echo "changelog: $(GALAXY_VERSION) is released (tag $(GALAXY_VERSION)); new fragments go into the next release: make release VERSION=x.y.z" >&2; \
		exit 1; \
	fi
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/antsibull-changelog release --version $(GALAXY_VERSION) \
		--update-existing --refresh-fragments without-archives

# The artifact in dist/, checked by Galaxy's importer (offline, without its ansible-test step).
dist: $(BIN)/.installed $(IMPORTER_VENV)/.requirements
	$(BIN)/python tools/release.py check

# make release VERSION=x.y.z: version in galaxy.yml, changelog section, artifact in dist/ checked
# by the importer, a commit and the tag x.y.z (docs/DEVELOPING.md, "Releasing"). Publishing is
# a separate step: it needs the maintainer's Galaxy token.
release: $(BIN)/.installed $(IMPORTER_VENV)/.requirements
	$(BIN)/python tools/release.py release "$(VERSION)"

bench: $(BIN)/.installed $(LINK)
	$(BIN)/python bench/bench.py

$(BIN)/.installed: requirements.txt requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(IMPORTER_VENV)/.requirements: tools/requirements-importer.txt $(BIN)/.installed
	$(BIN)/python tools/release.py setup-importer

$(LINK):
	mkdir -p $(dir $@)
	ln -sfn $(CURDIR) $@

clean:
	rm -rf $(VENV) $(IMPORTER_VENV) dist .ansible .tox .pytest_cache playbooks/.ansible_async_state
