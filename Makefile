# InvisPose: `make run` installs and runs the appliance; `make test` installs and runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= config/appliance.yaml

# Debian packages the test suite drives as real services (installed by `make test` when missing).
TEST_APT_PACKAGES := chromium shellcheck busybox nodejs openssl mosquitto ffmpeg nginx libnginx-mod-rtmp iproute2 tesseract-ocr

.PHONY: install install-test install-mutation run test lint format bench mutate clean vendor-web image test-image addon

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@scripts/system-deps.sh python3-venv ffmpeg
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

install-test: $(VENV)/.installed-test

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

install-mutation: $(VENV)/.installed-mutation

$(VENV)/.installed-mutation: $(VENV)/.installed-test pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test,mutation]'
	@touch $@

run: install
	$(BIN)/invispose run --config $(CONFIG)

test: install-test
	@scripts/system-deps.sh $(TEST_APT_PACKAGES)
	$(BIN)/python -m pytest -q

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install-test
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# The web UI's browser libraries (package.json, exact versions in package-lock.json), copied into
# appliance/web/vendor/ and committed: installing the appliance needs no npm. Needs npm; run after a bump.
vendor-web:
	scripts/vendor-web.sh

# Mutation score per module (minutes; not part of `make test`): see scripts/mutation_score.py.
mutate: install-mutation
	INVISPOSE_CAPTURES=$${INVISPOSE_CAPTURES:-$(CURDIR)/../shared/captures} $(BIN)/python scripts/mutation_score.py $(if $(MODULES),--modules $(MODULES))

# The edge box image (Debian bookworm, image/README.md): ARCH=amd64 or arm64; needs root. Not part of
# `make test`: `make test-image` boots the built amd64 root filesystem and checks the appliance in it.
ARCH ?= amd64
IMAGE_APT_PACKAGES := mmdebstrap qemu-user-static binfmt-support systemd-container

image: install
	@scripts/system-deps.sh $(IMAGE_APT_PACKAGES)
	image/build.sh --arch $(ARCH)

test-image: install-test
	@scripts/system-deps.sh $(IMAGE_APT_PACKAGES)
	$(BIN)/python -m pytest -q -p no:cacheprovider --timeout 900 image/tests --rootfs build/image/amd64/rootfs

# The Home Assistant add-on's build context: the appliance's wheel and default configuration next to its
# Dockerfile (addons/invispose/build/, not in git); then `docker build addons/invispose` where Docker runs.
addon: install
	rm -rf addons/invispose/build
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir addons/invispose/build .
	cp config/appliance.yaml addons/invispose/build/appliance.yaml
	@if docker info >/dev/null 2>&1; then docker build -t invispose-addon addons/invispose; \
	else echo "addon: build context ready in addons/invispose (no Docker engine here to build the image)"; fi

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache mutants
