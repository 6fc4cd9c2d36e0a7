# Two commands do everything on a fresh machine: `make book` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
export EARLYEXIT_PROGRESS ?= 0

.PHONY: book test unit nbval browser data browser-deps notebooks bench lock clean

$(STAMP): requirements.txt requirements-lock.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt -c requirements-lock.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

# Found locally, else downloaded by torchvision, else (as root with apt) Debian's package.
data: $(STAMP)
	@$(BIN)/python -m earlyexit.data || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian's dataset-fashion-mnist ..."; \
	    apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null && $(BIN)/python -m earlyexit.data; \
	  else exit 1; fi; }

# Headless Chromium for the browser test (Debian's package; as root with apt).
browser-deps:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "error: the browser test needs Debian's chromium (apt-get install chromium)"; exit 1; fi; }

# The HTML book, from the outputs committed in the notebooks; any warning fails the build.
book: data
	$(BIN)/jupyter-book build . -W -n --keep-going --all

unit: data
	$(BIN)/pytest tests --ignore=tests/browser

# nbval re-executes every notebook and compares with the committed outputs.
nbval: data
	$(BIN)/pytest --nbval --nbval-current-env -p no:cacheprovider notebooks/

browser: book browser-deps
	$(BIN)/pytest tests/browser

test: unit nbval browser

# Re-execute every notebook in place (after changing code or a chapter) to refresh its outputs.
notebooks: data
	EARLYEXIT_PROGRESS=1 $(BIN)/jupyter execute --inplace --timeout=1800 $(NOTEBOOKS)

bench: data
	$(BIN)/python -m benchmarks.speed

# Record the exact versions that worked.
lock: $(STAMP)
	$(BIN)/pip freeze --exclude-editable | grep -v '^-e ' > requirements-lock.txt

clean:
	rm -rf _build .jupyter_cache
