# noema: the two commands a newcomer needs are `make run` and `make test`.
JOBS ?= 2
BUILD_DIR ?= build
ASAN_DIR ?= build-asan
CMAKE_FLAGS ?=
STORE ?= sqlite:./noema-data/noema.db
# The suites the sanitizer build runs (ctest labels unit, conformance, service, mongo,
# server); the CLI and browser tests drive the release binary.
ASAN_TARGETS ?= noema_unit_tests noema_conformance_tests noema_service_tests noema_mongo_wire_tests noema_server_tests

.PHONY: all setup build build-asan run test test-release test-asan format format-check bench clean

all: build

setup:
	@scripts/setup

build: setup
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

build-asan: setup
	@cmake -S . -B $(ASAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DNOEMA_SANITIZE=ON -DNOEMA_BUILD_BENCH=OFF $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(ASAN_DIR) -j $(JOBS) --target $(ASAN_TARGETS)

# Set up, build, and run noema on the embedded store (no configuration needed). An empty
# store first gets the demo history, so the dashboard it prints the URL of shows data.
run: build
	@$(BUILD_DIR)/noema serve --store $(STORE) --demo-if-empty

# Set up, build, and run every test: the release build's whole suite, then the unit,
# conformance, service, MongoDB-wire and HTTP server suites again under AddressSanitizer +
# UBSan, then the format check.
test: test-release test-asan format-check

test-release: build
	@ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) --timeout 600

test-asan: build-asan
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(ASAN_DIR) --output-on-failure -j $(JOBS) -L 'unit|conformance|service|mongo|server' --timeout 900

format:
	@clang-format -i $$(git ls-files '*.h' '*.cc')

format-check:
	@clang-format --dry-run --Werror $$(git ls-files '*.h' '*.cc') && echo "format: ok"

bench: build
	@bench/run_all.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR)
