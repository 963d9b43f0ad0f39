# `make reproduce` (the main job) and `make test` (the test suite) each set up .venv on first use.
# `make reproduce PAPERS="clip vit"` reproduces only those papers (ids as `vlnotes list` shows them).
PYTHON ?= python3
PAPERS ?= all
VENV ?= .venv
STAMP := $(VENV)/.installed

.PHONY: reproduce test install clean-venv docs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

reproduce: $(STAMP)
	$(VENV)/bin/vlnotes reproduce $(PAPERS)

# pytest exits 5 when it collects nothing: that is a failure here, not a pass. One worker per core (pytest-xdist);
# the docs tests share one site build, so they stay on one worker (their xdist_group).
test: $(STAMP)
	@$(VENV)/bin/python -m pytest tests -n auto --dist loadgroup; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

# The documentation site, built offline from the committed notebooks into _docs/ (KaTeX: npm, installed on first use).
docs: $(STAMP)
	$(VENV)/bin/vlnotes docs

clean-venv:
	rm -rf $(VENV)
