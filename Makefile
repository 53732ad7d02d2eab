# The README's commands: `make demo` and `make test`. Both install what is missing first.
BUILD_DIR ?= build
CXX_COMPILER ?= clang++
C_COMPILER ?= clang
CMAKE_ARGS ?=
JOBS ?= $(shell nproc)

.PHONY: all deps configure build test unit demo bench bench-sim fuzz fuzz-sim regress clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_CXX_COMPILER=$(CXX_COMPILER) \
	  -DCMAKE_C_COMPILER=$(C_COMPILER) $(CMAKE_ARGS)

configure: deps $(BUILD_DIR)/build.ninja

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Every test, the sanitized twins and the integration tests against a real PostgreSQL included.
test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 1500

# Unit tests only (no PostgreSQL needed).
unit: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) -L unit

demo: build
	bash scripts/demo.sh $(BUILD_DIR)/switchyard

bench: build
	bash bench/bench.sh $(BUILD_DIR)/switchyard

# Longer fuzzing than `make test` does: FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 300
fuzz: build
	bash scripts/fuzz.sh $(BUILD_DIR) $(FUZZ_SECONDS)

# Long simulator campaigns, one shard per core: `make fuzz-sim SEEDS=1..100000` (without SEEDS,
# a fresh random range of 10,000 seeds). SIM_ARGS adds options, e.g. SIM_ARGS='--mutant NAME'.
SEEDS ?=
SIM_ARGS ?=
fuzz-sim: build
	bash scripts/fuzz-sim.sh $(BUILD_DIR)/switchyard "$(SEEDS)" $(SIM_ARGS)

# The simulator's speed on one core: simulated client queries per wall-clock second.
bench-sim: build
	bash bench/sim-speed.sh $(BUILD_DIR)/switchyard

regress: build
	bash scripts/run-regress.sh $(BUILD_DIR)/switchyard

clean:
	rm -rf $(BUILD_DIR)
