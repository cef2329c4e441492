# Entry points. Everything runs from a virtualenv made here from requirements.txt, and the
# collection is reached the way users address it (rstyczynski.ansible.<role>) through a
# collections path that points at this checkout.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
COLLECTIONS := $(CURDIR)/.ansible/collections
LINK := $(COLLECTIONS)/ansible_collections/rstyczynski/ansible
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)

.PHONY: demo test lint unit integration bench clean

# The main job: the idempotent long-running job on localhost, run twice. The first run starts
# the job and saves its id; the second run finds the id and re-attaches to the same job.
demo: $(BIN)/.installed $(LINK)
	@echo "=== First run: the job is not known yet, so it is started and saved ==="
	$(BIN)/ansible-playbook -i playbooks/inventory.ini playbooks/idempotent_job.yml
	@echo "=== Second run: the job is found by name and re-attached, not started again ==="
	$(BIN)/ansible-playbook -i playbooks/inventory.ini playbooks/idempotent_job.yml

# The whole suite: lint, then every test (unit and integration).
test: lint $(BIN)/.installed $(LINK)
	$(BIN)/python -m pytest -n 2 tests

lint: $(BIN)/.installed $(LINK)
	$(BIN)/yamllint --strict .
	$(BIN)/ansible-lint --offline
	$(BIN)/ruff check tests bench
	$(BIN)/ruff format --check tests bench
	$(BIN)/antsibull-changelog lint

unit: $(BIN)/.installed $(LINK)
	$(BIN)/python -m pytest tests/unit

integration: $(BIN)/.installed $(LINK)
	$(BIN)/python -m pytest tests/integration

bench: $(BIN)/.installed $(LINK)
	$(BIN)/python bench/bench.py

$(BIN)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(LINK):
	mkdir -p $(dir $@)
	ln -sfn $(CURDIR) $@

clean:
	rm -rf $(VENV) .ansible .tox .pytest_cache playbooks/.ansible_async_state
