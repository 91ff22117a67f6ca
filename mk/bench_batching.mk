# mk/bench_batching.mk: make bench-batching: one request at a time vs static batches vs continuous
# batching (emu2_batcher) on the tiny model, alternating in one process (tests/bench/bench_batching.c).
# BENCH_ARGS passes options, e.g. BENCH_ARGS="--beams 1 --threads 2 --rounds 5".
BENCH_BATCHING := $(BUILD)/bench/bench_batching

.PHONY: bench-batching
bench-batching: $(BENCH_BATCHING)
	@$(BENCH_BATCHING) models/emu2-tiny-digits $(BENCH_ARGS)

$(BENCH_BATCHING): tests/bench/bench_batching.c tests/bench/bench_util.h $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Itests/bench $< $(LIB_A) $(LDFLAGS) $(LDLIBS) -o $@
