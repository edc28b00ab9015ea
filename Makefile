# Developer entry points. `make bench` measures farmcast against gst-launch-1.0
# and ffmpeg (see bench/run.sh); the farmcast rows read "n/a" with the reason
# when the release build fails or the daemon cannot stream yet.

.PHONY: all build test unit lint fmt bench bench-quick

all: build

build:
	cargo build --release

test:
	bash scripts/test.sh

unit:
	cargo test

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

fmt:
	cargo fmt

bench:
	-cargo build --release --bin farmcast
	bench/run.sh $(BENCH_ARGS)

# One short run of each peer, for checking the script itself.
bench-quick:
	-cargo build --release --bin farmcast
	bench/run.sh --runs 1 --seconds 8 --presses 2 --restarts 1 --tags 2 --rtt-logs 5 --rtt-golive 1 \
	  --status-runs 1 --status-seconds 8 --uplink-seconds 15 --flood-runs 1 \
	  --out bench/out/BENCHMARKS-quick.md $(BENCH_ARGS)

# Debian packages and the SD-card image (docs/appliance.md).
.PHONY: deb deb-arm64 image
deb:
	scripts/build-deb.sh --lintian

deb-arm64:
	scripts/cross-arm64.sh --deb

image:
	image-build/build.sh $(IMAGE_ARGS)
