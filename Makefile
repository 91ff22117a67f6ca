# emu2: one entry point.
#   make            libemu2.so, the emu2 command, tests (and, from their issues on, Lua, PostgreSQL, CUDA)
#   make demo       installs missing Debian packages, builds, runs the demo
#   make test       installs missing Debian packages, builds, runs the whole suite (plain + ASan/UBSan + fuzz smoke)
#   make test-asan  the suite under ASan+UBSan only
#   make fuzz       each fuzz target for FUZZ_SECONDS (default 60)
#   make install PREFIX=/usr/local
#
# Builds go to $(BUILD) (default build/); sanitizer and fuzz builds use their own folders, so
# they never mix objects with the plain build.

BUILD   ?= build
PREFIX  ?= /usr/local
SAN     ?= 0
FUZZ    ?= 0
OPT     ?= -O2
FUZZ_SECONDS ?= 60
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)

CC  ?= cc
CXX ?= c++
ifeq ($(FUZZ),1)
CC  := clang-14
CXX := clang++-14
endif

WARN      := -Wall -Wextra
CPPFLAGS  += -Icore/include -Icore -D_DEFAULT_SOURCE -D_FILE_OFFSET_BITS=64
CFLAGS    ?= $(OPT) -g
CXXFLAGS  ?= $(OPT) -g
CFLAGS    += -std=c11 $(WARN) -fPIC -fvisibility=hidden -pthread
CXXFLAGS  += -std=c++17 $(WARN) -fPIC -fvisibility=hidden -pthread
LDLIBS    += -lturbojpeg -lpng -lsentencepiece -ljansson -lstdc++ -lm -lpthread -ldl

ifeq ($(SAN),1)
SANFLAGS  := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
CFLAGS    += $(SANFLAGS)
CXXFLAGS  += $(SANFLAGS)
LDFLAGS   += $(SANFLAGS)
endif
ifeq ($(FUZZ),1)
FUZZFLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
CFLAGS    += $(FUZZFLAGS)
CXXFLAGS  += $(FUZZFLAGS)
LDFLAGS   += -fsanitize=address,undefined
endif

CORE_C   := $(sort $(shell find core -name '*.c' ! -path 'core/cli/*'))
CORE_CXX := $(sort $(shell find core -name '*.cc'))
CLI_C    := $(sort $(wildcard core/cli/*.c))
TEST_C   := $(sort $(wildcard tests/unit/test_*.c))
FUZZ_C   := $(sort $(wildcard tests/fuzz/fuzz_*.c))

CORE_OBJ := $(CORE_C:%.c=$(BUILD)/obj/%.o) $(CORE_CXX:%.cc=$(BUILD)/obj/%.o)
CLI_OBJ  := $(CLI_C:%.c=$(BUILD)/obj/%.o)
TEST_BIN := $(TEST_C:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_BIN := $(FUZZ_C:tests/fuzz/%.c=$(BUILD)/fuzz/%)

LIB_A  := $(BUILD)/libemu2.a
LIB_SO := $(BUILD)/libemu2.so
CLI    := $(BUILD)/bin/emu2

.PHONY: all lib cli tests deps demo test test-asan check fuzz fuzz-build install clean

all: lib cli tests

lib: $(LIB_SO) $(LIB_A)
cli: $(CLI)
tests: $(TEST_BIN)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/%.o: %.cc
	@mkdir -p $(@D)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) -MMD -MP -c $< -o $@

$(LIB_A): $(CORE_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(LIB_SO): $(CORE_OBJ)
	@mkdir -p $(@D)
	$(CC) -shared $(LDFLAGS) -Wl,-soname,libemu2.so.0 -o $@ $^ $(LDLIBS)

$(CLI): $(CLI_OBJ) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LIB_A) $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/check.h $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Itests/unit -o $@ $< $(LIB_A) $(LDFLAGS) $(LDLIBS)

# Fuzz targets link libFuzzer's main; built only with FUZZ=1 (clang).
$(BUILD)/fuzz/%: tests/fuzz/%.c $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -fsanitize=fuzzer -o $@ $< $(LIB_A) $(LDFLAGS) $(LDLIBS)

fuzz-build: $(FUZZ_BIN)

-include $(CORE_OBJ:.o=.d) $(CLI_OBJ:.o=.d)

# ---------------------------------------------------------------- top-level flows

deps:
	@scripts/deps.sh

demo: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@scripts/demo.sh $(BUILD)

# The whole suite: plain build, ASan+UBSan build, fuzz smoke; one final "N passed, N failed" line.
test: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@$(MAKE) --no-print-directory -j$(JOBS) BUILD=build-asan SAN=1 OPT=-O1 all
	@$(MAKE) --no-print-directory -j$(JOBS) BUILD=build-fuzz FUZZ=1 OPT=-O1 fuzz-build
	@tests/run.sh $(BUILD) build-asan

test-asan: deps
	@$(MAKE) --no-print-directory -j$(JOBS) BUILD=build-asan SAN=1 OPT=-O1 all
	@EMU2_SKIP_EXTRA=1 tests/run.sh build-asan

check: all
	@EMU2_SKIP_EXTRA=1 tests/run.sh $(BUILD)

fuzz: deps
	@$(MAKE) --no-print-directory -j$(JOBS) BUILD=build-fuzz FUZZ=1 OPT=-O1 fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh build-fuzz

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include
	install -m 0755 $(LIB_SO) $(DESTDIR)$(PREFIX)/lib/libemu2.so.0
	ln -sf libemu2.so.0 $(DESTDIR)$(PREFIX)/lib/libemu2.so
	install -m 0755 $(CLI) $(DESTDIR)$(PREFIX)/bin/emu2
	install -m 0644 core/include/emu2.h $(DESTDIR)$(PREFIX)/include/emu2.h

clean:
	rm -rf build build-asan build-fuzz

# Benchmarks: the engine against the PyTorch reference, same machine, same run (tests/bench/run.sh,
# results in docs/PERFORMANCE.md). BENCH_QUICK=1 for a short run; not part of `make test`.
.PHONY: bench
bench: lib
	@BUILD=$(BUILD) tests/bench/run.sh

# ---------------------------------------------------------------- front ends and backends
# Each area adds itself from its own fragment (mk/lua.mk, mk/pg.mk, mk/cuda.mk, ...): extra
# prerequisites of all / install / clean, and its own targets. Fragments build nothing in the
# sanitizer or fuzz builds unless they say so.
-include $(sort $(wildcard mk/*.mk))
