# Two commands on a fresh machine:  `make demo`  and  `make test`.
# Both create .venv on first use and install tinct into it (torch is pinned: 2.13.0 has a local CPU wheel).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tinct-installed

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[export,train,openvino,quant,bench,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tinct colorize tests/fixtures/photos/horses_herd.jpg --hints tests/fixtures/demo_hints.json -o demo.png
	@echo "wrote demo.png"

test: $(STAMP)
	$(VENV)/bin/tinct data fetch --split val --no-progress
	$(PY) -m pytest -q -m "not gpu" -p no:cacheprovider

.PHONY: install demo test
