# Key Ceremony Console: the two commands are `make demo` and `make test`.
# Both create .venv, install the package, and install SoftHSM2, p11-kit and OpenSC when missing.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := softhsm2 p11-kit p11-kit-modules opensc
DEMO_DIR ?= demo
PYTEST_ARGS ?=

.PHONY: demo test lint screenshots bench rehearsal setup system-packages clean

setup: $(BIN)/ceremony system-packages

$(BIN)/ceremony: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

# apt when a tool is missing; as root, or through sudo; otherwise one clear message.
system-packages:
	@missing=""; \
	command -v softhsm2-util >/dev/null 2>&1 || missing="yes"; \
	command -v p11-kit >/dev/null 2>&1 || missing="yes"; \
	command -v pkcs11-tool >/dev/null 2>&1 || missing="yes"; \
	ls /usr/lib/*/pkcs11/p11-kit-client.so /usr/lib/pkcs11/p11-kit-client.so >/dev/null 2>&1 || missing="yes"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing $(APT_PACKAGES)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	  elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing $(APT_PACKAGES) with sudo"; \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	  else \
	    echo "error: SoftHSM2, p11-kit and OpenSC are missing — install the Debian/Ubuntu packages '$(APT_PACKAGES)' (macOS: brew install softhsm p11-kit opensc)" >&2; \
	    exit 1; \
	  fi; \
	fi

demo: setup
	$(BIN)/ceremony demo --workspace $(DEMO_DIR)

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

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
