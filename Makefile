# Everything a fresh machine needs: `make demo` and `make test` create .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXAMPLE := issues/2026-11-24-france-welcomes-chechen-refugees

.PHONY: demo test test-fast browser lint typecheck screenshots bench clean

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

# The whole suite: lint, formatting, mypy --strict, every test under coverage (subprocesses
# included), and the coverage floor (90 %, in pyproject.toml).
test: $(VENV)/.installed-test browser lint typecheck
	$(BIN)/coverage erase
	$(BIN)/coverage run -m pytest -q
	$(BIN)/coverage combine -q
	$(BIN)/coverage report

# The fast lane (about 40 s here on 2 cores): ruff, then the tests that start no server, browser
# or process (tests/lanes.py marks the others `slow`), the end-to-end `newsletter build` of the
# example among them, and the tests that run on both databases on SQLite only.
test-fast: $(VENV)/.installed-test
	$(BIN)/ruff check newsletter tests benchmarks
	$(BIN)/python -m pytest -q -m "not slow and not postgres_rerun"

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

# Debian packages that tests use as real servers and tools: chromium (browser tests),
# SpamAssassin (`check --spam`), dnsmasq (the doctor's DNS), Dovecot (inbound IMAP), PostgreSQL
# (the shared store; the tests run their own throwaway cluster). Installed where we can (root
# with apt-get; services are not started by the install, so no cluster of the package's own
# runs), else those tests are skipped with the reason.
browser:
	@missing=""; command -v chromium >/dev/null 2>&1 || missing="chromium"; \
	command -v spamassassin >/dev/null 2>&1 || missing="$$missing spamassassin"; \
	PATH="$$PATH:/usr/sbin" command -v dnsmasq >/dev/null 2>&1 || missing="$$missing dnsmasq-base"; \
	[ -x /usr/sbin/dovecot ] || missing="$$missing dovecot-imapd"; \
	command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
	  || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Debian's$$missing for the tests that use them..."; \
	    made=""; [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made=1; }; \
	    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	    [ -z "$$made" ] || rm -f /usr/sbin/policy-rc.d; \
	  else echo "Not installed:$$missing; the tests that need them will be skipped"; fi; \
	fi

lint: $(VENV)/.installed-test
	$(BIN)/ruff check newsletter tests benchmarks
	$(BIN)/ruff format --check newsletter tests benchmarks

# Regenerate the README's screenshots of the email and the web pages (needs chromium).
screenshots: $(VENV)/.installed-test browser
	mkdir -p docs/screenshots
	NEWSLETTER_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest -q tests/test_web_browser.py tests/test_preview.py tests/test_images_browser.py

# Needs the MJML CLI for the build ratio: npm install --prefix benchmarks/.node mjml@5
bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/build.py
	$(BIN)/python benchmarks/import.py --quick
	$(BIN)/python benchmarks/archive.py

clean:
	rm -rf build outbox site .pytest_cache
