# Two commands on a fresh machine:  `make demo`  and  `make test`.
# Both create .venv on first use and install tinct into it (torch is pinned: 2.13.0 has a local CPU wheel).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tinct-installed

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[export,train,openvino,quant,bench,dev,serve,browser,ray,triton]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tinct colorize data/samples/horses_herd.jpg --hints data/samples/horses_herd_hints.json -o demo.png
	@echo "wrote demo.png"

test: $(STAMP) browser arm64-tools web-assets
	$(VENV)/bin/tinct data fetch --split val --no-progress
	$(PY) -m pytest -q -m "not gpu" -p no:cacheprovider -n 2 --dist loadfile --durations=25

# The long fuzz run (issue 15): every target in tests/test_fuzz.py and tests/test_fuzz_serve.py with 10,000 cases, hypothesis' statistics
# (cases, outcomes, time per target) at the end; docs/reliability.md quotes its last figures.
fuzz: $(STAMP)
	TINCT_FUZZ_EXAMPLES=10000 $(PY) -m pytest -q -p no:cacheprovider -m fuzz --hypothesis-show-statistics tests/test_fuzz.py tests/test_fuzz_serve.py

# The browser test of `tinct serve` drives Debian's chromium (Playwright's own download is not reachable here).
# As root it is installed from the Debian archive; otherwise that test says how to get it (and fails under CI).
browser:
	@if ! command -v chromium >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium for the browser test of tinct serve"; \
	  apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; \
	fi

# ONNX Runtime Web for the in-browser engine (tinct serve's "your CPU" engines, tinct deploy web): the pinned
# tarball from the npm registry, its sha512 checked, the few files a page needs kept in serve/static/vendor/.
web-assets: $(STAMP)
	$(PY) -m tinct.serve.web_assets

# The arm64 leg of the suite (tests/test_arm64.py) runs tinct's runtime in an arm64 Debian root under QEMU user
# emulation. As root the tools come from the Debian archive; otherwise that leg says what is missing (and fails
# under CI).
arm64-tools:
	@if ! command -v debootstrap >/dev/null || ! command -v qemu-aarch64-static >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's qemu-user-static, binfmt-support and debootstrap for the arm64 leg"; \
	    apt-get install -y -q qemu-user-static binfmt-support debootstrap >/dev/null || { apt-get update -q >/dev/null \
	      && apt-get install -y -q qemu-user-static binfmt-support debootstrap >/dev/null; }; \
	  fi; \
	fi

.PHONY: install demo test browser arm64-tools web-assets fuzz
