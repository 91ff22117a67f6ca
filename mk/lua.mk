# mk/lua.mk: the Lua 5.4 module (lua/ -> $(BUILD)/lua/emu2.so, `require "emu2"`).
#   make lua            builds the module (also part of `make all`)
#   make install-lua    installs it into LUA_CMOD_DIR (default $(PREFIX)/lib/lua/5.4, on Debian's cpath)
#   make test-lua       runs the Lua tests (tests/extra/lua.sh; `make test` runs them too)
# The module links the whole static libemu2.a (built with -fPIC; whole, so weakly bound calls find
# their definitions) and hides its symbols, so it loads in a stock lua5.4 with no libemu2.so. Built only in the plain build (not SAN=1 / FUZZ=1: a
# sanitized module cannot load into an unsanitized lua5.4).
ifeq ($(SAN)$(FUZZ),00)

LUA_INCDIR   ?=
LUA_CFLAGS   := $(if $(LUA_INCDIR),-I$(LUA_INCDIR),$(shell pkg-config --cflags lua5.4 2>/dev/null || echo -I/usr/include/lua5.4))
LUA_CMOD_DIR ?= $(PREFIX)/lib/lua/5.4
LUA_C        := $(sort $(wildcard lua/*.c))
LUA_OBJ      := $(LUA_C:%.c=$(BUILD)/obj/%.o)
LUA_MOD      := $(BUILD)/lua/emu2.so

.PHONY: lua install-lua clean-lua test-lua
all: lua
lua: $(LUA_MOD)

$(LUA_OBJ): CPPFLAGS += $(LUA_CFLAGS)

$(LUA_MOD): $(LUA_OBJ) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) -shared $(LDFLAGS) -Wl,--exclude-libs,ALL -o $@ $(LUA_OBJ) -Wl,--whole-archive $(LIB_A) -Wl,--no-whole-archive $(LDLIBS)

-include $(LUA_OBJ:.o=.d)

install: install-lua
install-lua: $(LUA_MOD)
	install -d $(DESTDIR)$(LUA_CMOD_DIR)
	install -m 0755 $(LUA_MOD) $(DESTDIR)$(LUA_CMOD_DIR)/emu2.so

clean: clean-lua
clean-lua:
	rm -rf $(BUILD)/lua $(BUILD)/obj/lua

test-lua: lua
	@EMU2_BUILD=$(abspath $(BUILD)) bash tests/extra/lua.sh

endif
