# Key Ceremony Console: the two commands are `make demo` and `make test`.
# Both create .venv, install the package, and install the system packages below when missing.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo
PYTEST_ARGS ?=
# The suite runs on every core (two on CI): most of its time is SoftHSM2 and subprocesses.
# `loadscope` keeps each module's tests on one worker, so module fixtures are built once.
TEST_WORKERS ?= 2

.PHONY: demo test soak lint screenshots bench rehearsal setup system-packages clean

setup: $(BIN)/ceremony system-packages

$(BIN)/ceremony: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

# Every system package the console and its tests use, each with what proves it is installed: a
# command on PATH, or absolute paths (globs allowed, alternatives separated by commas).
SYSTEM_PACKAGES := \
	softhsm2=softhsm2-util \
	p11-kit=p11-kit \
	p11-kit-modules=/usr/lib/*/pkcs11/p11-kit-client.so,/usr/lib64/pkcs11/p11-kit-client.so,/usr/lib/pkcs11/p11-kit-client.so \
	opensc=pkcs11-tool \
	apache2=/usr/sbin/apache2 \
	libapache2-mod-auth-openidc=/usr/lib/apache2/modules/mod_auth_openidc.so \
	age=age \
	fiu-utils=fiu-run \
	librsvg2-bin=rsvg-convert \
	zbar-tools=zbarimg \
	deck=deck \
	tmux=tmux

# apt for the missing ones; as root, or through sudo; otherwise one clear message.
system-packages:
	@missing=""; \
	for entry in $(SYSTEM_PACKAGES); do \
	  package=$${entry%%=*}; found=""; \
	  for probe in $$(echo "$${entry#*=}" | tr ',' ' '); do \
	    case $$probe in \
	      /*) ls $$probe >/dev/null 2>&1 && found=yes ;; \
	      *) command -v $$probe >/dev/null 2>&1 && found=yes ;; \
	    esac; \
	  done; \
	  [ -n "$$found" ] || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing with sudo"; \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "error: missing system packages:$$missing — install these Debian/Ubuntu packages (apt-get install$$missing), or their equivalents on your system (macOS: brew install softhsm p11-kit opensc librsvg zbar tmux)" >&2; \
	    exit 1; \
	  fi; \
	fi

# Without a terminal (a script, CI) the demo workspace is built all the same and the command
# that opens it is printed: the TUI needs a terminal to draw on.
demo: setup
	@if [ -t 0 ] && [ -t 2 ]; then \
	  $(BIN)/ceremony demo --workspace $(DEMO_DIR); \
	else \
	  echo "no terminal here: the demo workspace is built, the console is not opened"; \
	  $(BIN)/ceremony demo --headless --workspace $(DEMO_DIR) && \
	  echo "open it in a terminal: $(BIN)/ceremony --workspace $(DEMO_DIR)"; \
	fi

test: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope -m "not soak" --durations=15 \
	  $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# The fault campaigns (tests/reliability: kills at any instant, failing writes, two consoles,
# the network HSM, broken workspaces) run in `make test` at a size that fits its time; the soak
# runs them long: SOAK_KILLS kills, ENOSPC and EIO at every write point, SOAK_RACES races, the
# HSM watchdog at its default. CEREMONY_KILL_SEED=N replays a kill campaign.
SOAK_KILLS ?= 2000
SOAK_RACES ?= 100
FAULT_TESTS := tests/reliability/test_kills_anywhere.py tests/reliability/test_write_faults.py \
	tests/reliability/test_two_consoles.py tests/reliability/test_network_hsm_faults.py \
	tests/reliability/test_broken_workspace.py

soak: setup
	CEREMONY_SOAK=1 CEREMONY_KILLS=$(SOAK_KILLS) CEREMONY_FAULT_POINTS=all \
	CEREMONY_RACE_ROUNDS=$(SOAK_RACES) CRASH_REPEATS=5 $(BIN)/python -m pytest -s --durations=10 \
	$(FAULT_TESTS) tests/reliability/test_crash_quarterly.py $(PYTEST_ARGS)
	CEREMONY_SOAK=1 $(BIN)/python -m pytest --durations=10 -m soak tests/ $(PYTEST_ARGS)
	CEREMONY_SOAK=1 $(BIN)/python -m pytest --durations=10 tests/reliability/test_ledger_mutations.py \
	  $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check console tests
	$(BIN)/mypy

screenshots: setup
	$(BIN)/python -m tests.tui.make_screenshots screenshots

bench: setup
	$(BIN)/python -m tests.bench

rehearsal: setup
	$(BIN)/python -m tests.rehearsal

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
