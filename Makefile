# The two commands the README promises on a fresh Debian machine with a Rust toolchain:
#   make demo   runs the product's main job end to end
#   make test   runs every test
# Each installs what it needs (apt-get) when missing.

CARGO ?= cargo

.PHONY: demo demo-bundle test deps-demo deps-test build-release bench

# The whole chain: sample image and bundle, import, airlock server, project, environment, SSH.
demo: deps-demo build-release
	target/release/airlock demo

# The connected side's part on its own: bundle, verify, import, serve, skopeo pull.
demo-bundle: deps-demo build-release
	scripts/demo.sh target/release/airlock

test: deps-test
	$(CARGO) test --workspace --all-targets --no-fail-fast

build-release:
	$(CARGO) build --release

deps-demo:
	scripts/install-deps.sh demo

deps-test:
	scripts/install-deps.sh test

bench: build-release
	bench/bundle.sh
	bench/control-plane.sh
