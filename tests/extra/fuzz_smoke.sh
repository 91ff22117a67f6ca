# A short run of every fuzz target (make test); `make fuzz` runs them longer.
FUZZ_SECONDS=${FUZZ_SMOKE_SECONDS:-15} exec tests/fuzz/run.sh build-fuzz
