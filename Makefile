# servicemonth — two commands do all the set-up on a fresh machine:
#   make demo   run the whole system on the embedded default (no server needed)
#   make test   run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-fast e2e-deployment chaos lint typecheck lock clean bench bench-smoke bench-pages

$(BIN)/servicemonth: requirements-dev.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

demo: $(BIN)/servicemonth
	sh scripts/system-packages.sh fonts
	$(BIN)/servicemonth demo

# Two workers (the machine has two cores); each has its own vhost and template databases.
# loadgroup: the two e2e demos and the page tests (each runs a whole servicemonth) go one
# after the other on one worker while the other worker runs the rest (side by side they
# fight for the two cores: the embedded demo took 8 minutes instead of 2.5).
test: $(BIN)/servicemonth
	sh scripts/system-packages.sh fonts browser
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

# The city and two districts as separate deployments on the machine's RabbitMQ and
# PostgreSQL (tests/deployment), and the suites marked long (the access matrix, a month's
# pii-scan); the default run skips them: several minutes, the whole machine.
e2e-deployment: $(BIN)/servicemonth
	sh scripts/system-packages.sh fonts
	SERVICEMONTH_E2E_DEPLOYMENT=1 $(BIN)/python -m pytest -q -m "deployment or long" tests

# The campaign month on the city and two districts while processes are killed, RabbitMQ and
# PostgreSQL restarted and the SMS and mail servers misbehave; then what was lost or done
# twice (chaos/month.py). SIZE=full (20,000 members, about half an hour) or small. It
# restarts the machine's RabbitMQ and PostgreSQL: run it alone.
SIZE ?= full
chaos: $(BIN)/servicemonth
	sh scripts/system-packages.sh fonts
	$(BIN)/python -m chaos --size $(SIZE)

# Every hot path against its baseline at SCALE of the city (1: Luoyang, 200,000 members);
# the table goes to stdout and README.md, the results to var/bench/scale-SCALE.json (after
# each benchmark: RESUME=1 runs only those the file does not hold yet).
SCALE ?= 0.05
bench: $(BIN)/servicemonth
	$(BIN)/python bench/run.py --scale $(SCALE) --readme --json var/bench/scale-$(SCALE).json $(if $(RESUME),--resume)

# CI: a tiny city, that every benchmark runs and checks its result (not how fast).
bench-smoke: $(BIN)/servicemonth
	$(BIN)/python bench/run.py --scale 0.001 --json var/bench/smoke.json

# Every page's API calls, size and time (median, p95) on the month the demo built.
bench-pages: $(BIN)/servicemonth
	test -f var/clock || $(MAKE) demo
	$(BIN)/python bench/web_pages.py

test-fast: $(BIN)/servicemonth
	$(BIN)/python -m pytest -q -m "not production" tests/unit

lint: $(BIN)/servicemonth
	$(BIN)/ruff check shared services tests chaos bench
	$(BIN)/ruff format --check shared services tests chaos bench

typecheck: $(BIN)/servicemonth
	$(BIN)/mypy

# Production and development pins, with hashes, from pyproject.toml's ranges; the versions
# already pinned stay unless a range no longer admits them (delete a line to upgrade it).
lock: $(BIN)/servicemonth
	grep -hoE '^[A-Za-z0-9_.-]+==[^ ]+' requirements-dev.lock > $(VENV)/pins.txt
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes --quiet \
	  --constraint $(VENV)/pins.txt --custom-compile-command 'make lock' -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes \
	  --quiet --constraint $(VENV)/pins.txt --custom-compile-command 'make lock' \
	  -o requirements-dev.lock

clean:
	rm -rf $(VENV) var
