# Two commands do everything on a fresh machine: `make book` and `make test` (see README.md).
# Python 3.11, 3.12 or 3.13: `make test PYTHON=python3.12` picks another one.
PYTHON ?= python3
PYVER  := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-python$(PYVER)
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
# The chapters that time something (tests/test_notebooks.py checks this list): they run one after
# another with nothing else on the CPU; the others may share it.
TIMED := $(addprefix notebooks/,02_fixed_network.ipynb 07_flops_vs_clock.ipynb 08_deployment.ipynb \
  09_serving.ipynb 10_many_exits.ipynb 11_token_exits.ipynb 12_self_speculative.ipynb)
UNTIMED := $(filter-out $(TIMED),$(NOTEBOOKS))
REPEATS ?= 4
# Committed notebooks show no progress bars; a reader's own run (Jupyter, `make lab`) does.
export EARLYEXIT_PROGRESS ?= 0

.PHONY: book test lint unit nbval nbval-untimed nbval-timed browser data models browser-deps web-deps lab \
  notebooks repeats bench lock clean

# Bytecode is written on first import, for the modules really used, instead of for every file
# of torch at install time (--no-compile: over a minute less). Where the environment sets
# PYTHONDONTWRITEBYTECODE, Python would never write it, and every kernel, worker and test run
# would compile torch anew (10 s each): the book's commands unset it.
unexport PYTHONDONTWRITEBYTECODE
$(STAMP): requirements.txt requirements-dev.txt requirements-lock.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' 2>/dev/null || { \
	  echo "error: the book needs Python 3.11, 3.12 or 3.13; '$(PYTHON)' is $$($(PYTHON) --version 2>&1 || echo missing)."; \
	  echo "       Name another one: make test PYTHON=python3.12"; exit 1; }
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    v=$$($(PYTHON) -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")'); \
	    echo "Installing Debian's python$$v-venv ..."; \
	    apt-get update -qq && apt-get install -y -qq python3-venv python$$v-venv >/dev/null; \
	  else echo "error: $(PYTHON) cannot create virtual environments: install python3-venv"; exit 1; fi; }
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --no-compile -r requirements-dev.txt -c requirements-lock.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

# Found locally, else downloaded by torchvision, else (as root with apt) Debian's package.
data: $(STAMP)
	@$(BIN)/python -m earlyexit.data || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian's dataset-fashion-mnist ..."; \
	    apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null && $(BIN)/python -m earlyexit.data; \
	  else exit 1; fi; }

# The chapters' models are shipped in notebooks/models/ (listed in its manifest.json, each file
# checked by its SHA-256). This trains any the folder lacks (none, in a full clone), two at a time
# with one thread each: faster on a small machine than one after another.
models: data
	$(BIN)/python -m earlyexit.pretrain $(ARGS)

# Headless Chromium for the browser test (Debian's package; as root with apt).
browser-deps:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "error: the browser test needs Debian's chromium (apt-get install chromium)"; exit 1; fi; }

# What the pages load from the book itself, fetched from npm at build time and never committed
# (as root with apt, Debian's nodejs and npm are installed when missing): onnxruntime-web for
# Chapter 9's live model, and MathJax 3 (the version Sphinx 7 writes its pages for), so that
# formulas render offline and no page asks another site for anything.
NPM_CHECK = command -v npm >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq $$(command -v node >/dev/null || echo nodejs) npm >/dev/null; \
	  else echo "error: the book's web dependencies need npm (apt-get install nodejs npm)"; exit 1; fi; }
ORT_WEB := onnxruntime-web@1.30.0
ORT_FILES := ort.wasm.min.js ort-wasm-simd-threaded.mjs ort-wasm-simd-threaded.wasm
# MathJax's combined TeX+MathML component with its fonts; the extensions, menu and speech
# modules it loads only on demand (an autoloaded TeX package, the accessibility menu) come too.
MATHJAX := mathjax@3.2.2
MATHJAX_PARTS := tex-mml-chtml.js input/tex/extensions input/mml/extensions output/chtml/fonts a11y ui sre
web-deps: $(addprefix book/_static/ort/,$(ORT_FILES)) book/_static/mathjax/tex-mml-chtml.js
$(addprefix book/_static/ort/,$(ORT_FILES)) &:
	@$(NPM_CHECK)
	npm install --silent --no-save --no-audit --no-fund --ignore-scripts --prefix .npm/ort $(ORT_WEB)
	mkdir -p book/_static/ort
	cp $(addprefix .npm/ort/node_modules/onnxruntime-web/dist/,$(ORT_FILES)) book/_static/ort/
book/_static/mathjax/tex-mml-chtml.js:
	@$(NPM_CHECK)
	npm install --silent --no-save --no-audit --no-fund --ignore-scripts --prefix .npm/mathjax $(MATHJAX)
	rm -rf book/_static/mathjax.tmp && mkdir -p book/_static/mathjax.tmp
	cd .npm/mathjax/node_modules/mathjax/es5 && tar -cf - $(MATHJAX_PARTS) | tar -xf - -C $(CURDIR)/book/_static/mathjax.tmp
	rm -rf book/_static/mathjax && mv book/_static/mathjax.tmp book/_static/mathjax

# The HTML book, from the outputs committed in the notebooks (no data needed); any warning fails the build.
book: $(STAMP) web-deps
	$(BIN)/jupyter-book build . -W -n --keep-going --all

# The package's code and the notebooks' code, in the column width the book shows.
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff check --line-length 79 notebooks

# On two workers with one thread each: most tests are short and spend their time in Python, and
# this took 97 s against 122 s one after another (two threads) on the book's 2-core machine.
# The data first: the provenance tests retrain on it.
unit: data
	OMP_NUM_THREADS=1 $(BIN)/pytest tests --ignore=tests/browser -n 2

# nbval re-executes every notebook: any unexpected error fails; cells tagged nbval-check-output
# (the package version a page ran with, source shown, error messages) must print what they did;
# every key result must stay within its recorded tolerance (EARLYEXIT_RESULTS=check). Other
# outputs (trained models, timings) legitimately differ between machines and are not compared.
# Every notebook in a fresh kernel, checked against its recorded results; the summary prints
# each notebook's time (notebooks/conftest.py).
NBVAL = EARLYEXIT_RESULTS=check $(BIN)/pytest -q --nbval-lax --nbval-current-env -p no:cacheprovider
nbval:
	$(MAKE) --no-print-directory nbval-untimed
	$(MAKE) --no-print-directory nbval-timed
nbval-untimed: models
	$(NBVAL) $(UNTIMED)
nbval-timed: models
	$(NBVAL) $(TIMED)

browser: book browser-deps
	$(BIN)/pytest tests/browser

# One after another: run side by side on two cores, the unit tests and the untimed chapters took
# 440 s together against about 300 s in turn (each uses both cores). Each step prints its time
# (the first, lint, includes installing the environment on a fresh clone).
test:
	@for step in lint unit nbval-untimed nbval-timed browser; do start=$$(date +%s); \
	  $(MAKE) --no-print-directory $$step || exit 1; \
	  echo "make $$step: $$(( $$(date +%s) - start )) s"; done

# Open the notebooks in JupyterLab (progress bars on).
lab: data
	EARLYEXIT_PROGRESS=1 $(BIN)/jupyter lab notebooks/ $$([ "$$(id -u)" = 0 ] && echo --allow-root)

# Re-execute every notebook in place (after changing the package or a chapter): refreshes the
# committed outputs and recorded results, and stamps the code they ran with.
notebooks: models
	EARLYEXIT_RESULTS=record $(BIN)/jupyter execute --inplace --timeout=1800 $(NOTEBOOKS)
	$(BIN)/python -m earlyexit.freshness stamp $(NOTEBOOKS)

# Run the timed chapters REPEATS more times (default 4), each in a fresh kernel, saving nothing but
# their timed verdicts (notebooks/results/runs/). Then `make notebooks` adds one run more and glues,
# for every timed comparison, only the verdict that all the runs on this CPU share (earlyexit.runs).
repeats: models
	for i in $$(seq $(REPEATS)); do \
	  EARLYEXIT_RESULTS=repeat $(BIN)/jupyter execute --timeout=1800 $(TIMED) || exit 1; done

bench: data
	$(BIN)/python -m benchmarks.cpu

# Record the exact versions that worked.
lock: $(STAMP)
	$(BIN)/pip freeze --exclude-editable | grep -v '^-e ' > requirements-lock.txt

clean:
	rm -rf _build .jupyter_cache .npm book/_static/ort book/_static/mathjax
