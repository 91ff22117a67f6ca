# Benchmark: the engine against llama.cpp (llama-cpp-python) on the same weights, decode and prefill
# tokens/s per bit width (tests/bench/run_llama_cpp.sh). BENCH_QUICK=1 for a sanity run on the tiny
# model; not part of `make all` or `make test` (it installs llama-cpp-python into a venv). Timings
# from a sanitizer or fuzz build would mean nothing: the target exists in the plain build only.
ifeq ($(SAN)$(FUZZ),00)
.PHONY: bench-llama
bench-llama: lib
	@BUILD=$(BUILD) tests/bench/run_llama_cpp.sh
endif
