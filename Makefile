# Everything a fresh machine needs: `make demo` and `make test` create .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXAMPLE := issues/2026-11-24-france-welcomes-chechen-refugees

.PHONY: demo test browser lint screenshots bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Everything, the optional browser automation included (`.[test]` includes `.[browser]`).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[browser]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/newsletter build $(EXAMPLE)
	$(BIN)/newsletter subscribers import demo/subscribers.csv
	$(BIN)/newsletter send $(EXAMPLE) --yes
	@echo "Delivered into the outbox, a Maildir any mail client can open:"
	@ls -1d $(CURDIR)/outbox/*/new

test: $(VENV)/.installed-test browser
	$(BIN)/ruff check newsletter tests benchmarks
	$(BIN)/python -m pytest -q

# The browser tests use Debian's chromium and `check --spam` SpamAssassin: installed where we can
# (root with apt-get), else those tests are skipped with the reason.
browser:
	@missing=""; command -v chromium >/dev/null 2>&1 || missing="chromium"; \
	command -v spamassassin >/dev/null 2>&1 || missing="$$missing spamassassin"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Debian's$$missing for the browser and spam tests..."; \
	    apt-get update -qq >/dev/null && apt-get install -y -qq $$missing >/dev/null; \
	  else echo "Not installed:$$missing; the tests that need them will be skipped"; fi; \
	fi

lint: $(VENV)/.installed-test
	$(BIN)/ruff check newsletter tests benchmarks
	$(BIN)/ruff format --check newsletter tests benchmarks

# Regenerate the README's screenshots of the web pages (needs chromium).
screenshots: $(VENV)/.installed-test browser
	mkdir -p docs/screenshots
	NEWSLETTER_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest -q tests/test_web_browser.py tests/test_preview.py

# Needs the MJML CLI for the build ratio: npm install --prefix benchmarks/.node mjml@5
bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/build.py
	$(BIN)/python benchmarks/import.py --quick
	$(BIN)/python benchmarks/archive.py

clean:
	rm -rf build outbox site .pytest_cache
