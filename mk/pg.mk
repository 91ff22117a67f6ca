# mk/pg.mk: the PostgreSQL extension (pg_emu2/, sql/). Built with PGXS as a VPATH build in
# $(BUILD)/pg, linking $(BUILD)/libemu2.a; with_llvm=no: no JIT bitcode (the functions only call C).
# Not built when PostgreSQL 15's pg_config is missing, nor in the sanitizer and fuzz builds (the
# server cannot load an ASan-instrumented library); tests/extra/pg.sh then skips, saying why.
PG_CONFIG ?= $(firstword $(wildcard /usr/lib/postgresql/15/bin/pg_config) $(shell command -v pg_config 2>/dev/null))
PG_BUILD  := $(BUILD)/pg
PG_MAKE    = $(MAKE) --no-print-directory -C $(PG_BUILD) -f $(CURDIR)/pg_emu2/Makefile PG_CONFIG=$(PG_CONFIG) \
             EMU2_LIB_A=$(abspath $(LIB_A)) EMU2_INCLUDE=$(CURDIR)/core/include with_llvm=no

.PHONY: pg install-pg clean-pg
ifeq ($(SAN)$(FUZZ),00)
ifneq ($(PG_CONFIG),)
all: pg
install: install-pg
endif
endif
clean: clean-pg

pg: $(LIB_A)
	@mkdir -p $(PG_BUILD)
	+@$(PG_MAKE) all

# Installs into the server's own folders (pg_config --pkglibdir / --sharedir, under DESTDIR if set), as
# CREATE EXTENSION needs; says so and goes on when they are not writable (make install as non-root).
install-pg: pg
	@if [ -z "$(DESTDIR)" ] && [ ! -w "$$($(PG_CONFIG) --pkglibdir)" ]; then \
	    echo "install-pg: $$($(PG_CONFIG) --pkglibdir) is not writable: PostgreSQL extension not installed (run as root)"; \
	else $(PG_MAKE) install; fi

clean-pg:
	rm -rf $(PG_BUILD)
