# xsnap: build, test, install.
#
#   make                 build plugin/nbdkit-xsnap-plugin.so and tools/xsnap
#   make check           install missing packages, build, run the TAP suite
#   make check SANITIZE=1  the same under ASan and UBSan (and the lock-order
#                          checker, lib/base/lockorder.h)
#   make check-long      soak and fuzz runs that take longer
#   make demo            install missing packages, build, run the demo
#   make bench           benchmarks against the named peers (docs/BENCHMARKS.md)
#   make install         PREFIX=/usr/local DESTDIR=
#   make deb             the Debian package xsnap_VERSION_ARCH.deb (debian/)

# The version of xsnap, of its plugin and of the Debian package: set here
# and nowhere else.
VERSION    := 1.0

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
PLUGINDIR  ?= $(shell pkg-config nbdkit --variable=plugindir 2>/dev/null || echo $(PREFIX)/lib/nbdkit/plugins)
# systemd looks in /usr/local/lib/systemd/system too; the Debian package
# uses /lib/systemd/system.
UNITDIR    ?= $(PREFIX)/lib/systemd/system
COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions
LIBEXECDIR ?= $(PREFIX)/libexec/xsnap
# The units read /etc/default/xsnap wherever the programs are.
SYSCONFDIR ?= /etc
DESTDIR    ?=

CC         ?= gcc
SANITIZE   ?= 0
PKGS       := sqlite3 libzstd jansson libcrypto
# Only for <libnbd.h> and <curl/curl.h>: libnbd is loaded with dlopen when
# an import or an export needs it (lib/ops/nbdapi.c), libcurl when an S3
# backend is opened (lib/repo/curlapi.c), because linking them (gnutls,
# libxml2, ICU, libstdc++; nghttp2, ssh2, ldap, kerberos, ...) costs every
# xsnap command milliseconds of start-up (~4 and ~3 ms).
# dlopen is in libc from glibc 2.34; older ones need -ldl in XS_LIBS.
CFLAGS_PKGS := $(PKGS) libnbd libcurl

WARNINGS   := -Wall -Wextra -Werror -Wshadow -Wvla -Wno-unused-parameter
CFLAGS     ?= -O2 -g
XS_CFLAGS  := -std=gnu11 $(WARNINGS) -fPIC -D_GNU_SOURCE -pthread -Ilib \
              -DXSNAP_VERSION='"$(VERSION)"' \
              $(shell pkg-config --cflags $(CFLAGS_PKGS) nbdkit 2>/dev/null)
XS_LDFLAGS := -pthread -Wl,--as-needed $(LDFLAGS)
XS_LIBS    := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm

ifeq ($(SANITIZE),1)
XS_CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer \
              -fno-sanitize-recover=undefined
XS_LDFLAGS += -fsanitize=address,undefined
endif

# The lock-order checker (lib/base/lockorder.h): on in sanitized builds, or
# alone with LOCK_CHECK=1.  Unit tests always check their own locks.
LOCK_CHECK ?= $(SANITIZE)
ifeq ($(LOCK_CHECK),1)
XS_CFLAGS  += -DXS_LOCK_CHECK
endif

# lib/ is one folder per layer, each using only the ones before it
# (docs/ARCHITECTURE.md, "The layers"):
LAYERS := base crypto repo head catalog access ops
# Each layer is an archive, linked highest first.
reverse = $(if $(1),$(call reverse,$(wordlist 2,$(words $(1)),$(1))) $(firstword $(1)))
layer_archive = lib/$(1)/libxsnap-$(1).a
LIB_ARCHIVES := $(foreach l,$(call reverse,$(LAYERS)),$(call layer_archive,$(l)))
LIB_SRCS    := $(sort $(foreach l,$(LAYERS),$(wildcard lib/$(l)/*.c)))
LIB_OBJS    := $(LIB_SRCS:.c=.o)
PLUGIN_SRCS := $(sort $(wildcard plugin/*.c))
PLUGIN_OBJS := $(PLUGIN_SRCS:.c=.o)
TOOL_SRCS   := $(sort $(wildcard tools/*.c))
TOOL_OBJS   := $(TOOL_SRCS:.c=.o)
# Unit tests live in the folder of the layer they test, and link only it
# and the layers below (tests/unit/LAYER/test-*.c).
UNIT_SRCS   := $(sort $(foreach l,$(LAYERS),$(wildcard tests/unit/$(l)/test-*.c)))
UNIT_TESTS  := $(UNIT_SRCS:.c=)
FUZZ_SRCS   := $(sort $(wildcard tests/fuzz/fuzz-*.c))
FUZZ_BINS   := $(FUZZ_SRCS:.c=)
SHELL_TESTS := $(sort $(wildcard tests/*.t))
MANPAGES    := docs/xsnap.1 docs/nbdkit-xsnap-plugin.1

PLUGIN := plugin/nbdkit-xsnap-plugin.so
TOOL   := tools/xsnap

.PHONY: all check check-run check-long check-long-run demo bench install \
        uninstall clean unit fuzz deps deb version FORCE

all: $(PLUGIN) $(TOOL) $(MANPAGES)

# Rebuild everything when the compiler or its flags change (SANITIZE=1).
.build-flags: FORCE
	@echo '$(CC) $(CPPFLAGS) $(CFLAGS) $(XS_CFLAGS) $(XS_LDFLAGS)' | cmp -s - $@ \
	  || echo '$(CC) $(CPPFLAGS) $(CFLAGS) $(XS_CFLAGS) $(XS_LDFLAGS)' > $@

%.o: %.c .build-flags
	$(CC) $(CPPFLAGS) $(CFLAGS) $(XS_CFLAGS) $(EXTRA_CFLAGS) -MMD -MP -c $< -o $@

# The AVX2 build of the block hash; chosen at run time when the CPU has it.
lib/base/hash-avx2.o: EXTRA_CFLAGS = -mavx2

# The archives of LAYER and the layers below it, highest first.
upto = $(if $(filter $(1),$(firstword $(2))),$(firstword $(2)),$(firstword $(2)) $(call upto,$(1),$(wordlist 2,$(words $(2)),$(2))))
archives_upto = $(foreach l,$(call reverse,$(call upto,$(1),$(LAYERS))),$(call layer_archive,$(l)))

# One archive per layer.  Building one first checks that no file of the
# layer includes or calls anything of a layer above it
# (scripts/check-layers), so an upward dependency fails the build.
define LAYER_RULES
$(call layer_archive,$(1)): $(filter lib/$(1)/%,$(LIB_OBJS)) \
    $(filter-out $(call layer_archive,$(1)),$(call archives_upto,$(1))) scripts/check-layers
	scripts/check-layers $(LAYERS) -- $(1)
	rm -f $$@
	ar rcs $$@ $(filter lib/$(1)/%,$(LIB_OBJS))
endef
$(foreach l,$(LAYERS),$(eval $(call LAYER_RULES,$(l))))

$(PLUGIN): $(PLUGIN_OBJS) $(LIB_ARCHIVES)
	$(CC) $(CFLAGS) $(XS_LDFLAGS) -shared -o $@ $(PLUGIN_OBJS) $(LIB_ARCHIVES) $(XS_LIBS)

$(TOOL): $(TOOL_OBJS) $(LIB_ARCHIVES)
	$(CC) $(CFLAGS) $(XS_LDFLAGS) -o $@ $(TOOL_OBJS) $(LIB_ARCHIVES) $(XS_LIBS)

define UNIT_RULES
tests/unit/$(1)/test-%: tests/unit/$(1)/test-%.c tests/unit/tap.h $(call archives_upto,$(1)) .build-flags
	scripts/check-layers $(LAYERS) -- $(1) $$<
	$$(CC) $$(CFLAGS) $$(XS_CFLAGS) -DXS_LOCK_CHECK -Itests/unit $$(XS_LDFLAGS) -o $$@ $$< $(call archives_upto,$(1)) $$(XS_LIBS)
endef
$(foreach l,$(LAYERS),$(eval $(call UNIT_RULES,$(l))))

docs/%.1: docs/%.pod
	pod2man --section=1 --center=xsnap --release=xsnap --name=$(notdir $*) $< > $@.tmp
	mv $@.tmp $@

unit: $(UNIT_TESTS)

# libFuzzer targets: clang, with the library rebuilt once for coverage
# (fuzzer-no-link) into tests/fuzz/lib/, then linked into each target.
FUZZ_CFLAGS := -std=gnu11 -g -O1 -D_GNU_SOURCE -DXS_NO_AVX2_DISPATCH -pthread -Ilib \
               -fsanitize=address,undefined \
               $(shell pkg-config --cflags $(CFLAGS_PKGS) 2>/dev/null)
FUZZ_LIB_OBJS := $(patsubst lib/%.c,tests/fuzz/lib/%.o,\
                   $(filter-out lib/base/hash-avx2.c,$(LIB_SRCS)))
tests/fuzz/lib/%.o: lib/%.c $(wildcard lib/*/*.h)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<
.SECONDARY: $(FUZZ_LIB_OBJS)
tests/fuzz/fuzz-%: tests/fuzz/fuzz-%.c $(FUZZ_LIB_OBJS)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB_OBJS) \
	  $(XS_LIBS)

fuzz: $(FUZZ_BINS)

deps:
	scripts/install-deps

# check and demo first install what is missing, then build and run in a
# second make so that pkg-config sees the new packages.
check:
	scripts/install-deps
	$(MAKE) check-run

# tests/with-s3 runs the suite beside a throwaway Ceph RGW (the S3 tests).
check-run: all $(UNIT_TESTS) $(FUZZ_BINS)
	XSNAP_SANITIZE=$(SANITIZE) XSNAP_FUZZ_SECONDS=$${XSNAP_FUZZ_SECONDS:-10} \
	  tests/with-s3 prove -j2 --timer $(UNIT_TESTS) $(SHELL_TESTS)

check-long:
	scripts/install-deps
	$(MAKE) check-long-run

check-long-run: all $(UNIT_TESTS) $(FUZZ_BINS)
	XSNAP_SANITIZE=$(SANITIZE) XSNAP_LONG=1 XSNAP_FUZZ_SECONDS=$${XSNAP_FUZZ_SECONDS:-300} \
	  tests/with-s3 prove -j2 --timer $(UNIT_TESTS) $(SHELL_TESTS)

demo:
	scripts/install-deps
	$(MAKE) all
	scripts/demo

bench:
	scripts/install-deps --bench
	$(MAKE) all
	scripts/bench

# The systemd units name /usr/bin/xsnap and /usr/libexec/xsnap: installed
# elsewhere, they are rewritten to name BINDIR and LIBEXECDIR.
UNITS := $(sort $(wildcard scripts/systemd/*.service scripts/systemd/*.socket \
                           scripts/systemd/*.timer))
REWRITE_PATHS := sed -e 's|/usr/bin/xsnap|$(BINDIR)/xsnap|g' \
                     -e 's|/usr/libexec/xsnap|$(LIBEXECDIR)|g'

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(MANDIR)/man1 \
	  $(DESTDIR)$(UNITDIR) $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(COMPLETIONDIR) \
	  $(DESTDIR)$(SYSCONFDIR)/default
	install -m 755 $(TOOL) $(DESTDIR)$(BINDIR)/xsnap
	install -m 755 $(PLUGIN) $(DESTDIR)$(PLUGINDIR)/nbdkit-xsnap-plugin.so
	install -m 644 $(MANPAGES) $(DESTDIR)$(MANDIR)/man1/
	for unit in $(UNITS); do \
	  $(REWRITE_PATHS) $$unit > $(DESTDIR)$(UNITDIR)/$${unit##*/}.tmp && \
	  chmod 644 $(DESTDIR)$(UNITDIR)/$${unit##*/}.tmp && \
	  mv $(DESTDIR)$(UNITDIR)/$${unit##*/}.tmp $(DESTDIR)$(UNITDIR)/$${unit##*/} \
	  || exit 1; \
	done
	$(REWRITE_PATHS) scripts/systemd/xsnap-each > $(DESTDIR)$(LIBEXECDIR)/xsnap-each.tmp
	chmod 755 $(DESTDIR)$(LIBEXECDIR)/xsnap-each.tmp
	mv $(DESTDIR)$(LIBEXECDIR)/xsnap-each.tmp $(DESTDIR)$(LIBEXECDIR)/xsnap-each
	install -m 644 scripts/completion/xsnap $(DESTDIR)$(COMPLETIONDIR)/xsnap
	# The units' settings: installed once, never replaced.
	test -e $(DESTDIR)$(SYSCONFDIR)/default/xsnap \
	  || install -m 644 scripts/systemd/xsnap.default $(DESTDIR)$(SYSCONFDIR)/default/xsnap

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/xsnap $(DESTDIR)$(PLUGINDIR)/nbdkit-xsnap-plugin.so
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MANPAGES)))
	rm -f $(addprefix $(DESTDIR)$(UNITDIR)/,$(notdir $(UNITS)))
	rm -f $(DESTDIR)$(LIBEXECDIR)/xsnap-each $(DESTDIR)$(COMPLETIONDIR)/xsnap
	-rmdir $(DESTDIR)$(LIBEXECDIR)

version:
	@echo $(VERSION)

# The Debian package (debian/): its changelog is written from VERSION,
# then it is built from a copy of the tree in deb-build/, and the .deb
# is put here.  DEB_OUT: another directory for it.
debian/changelog: Makefile scripts/deb-changelog
	scripts/deb-changelog $(VERSION) > $@.tmp
	mv $@.tmp $@

deb:
	scripts/install-deps --deb
	scripts/make-deb $(if $(DEB_OUT),--out $(DEB_OUT))

clean:
	rm -f lib/*/*.o lib/*/*.d lib/*/*.a plugin/*.o plugin/*.d $(PLUGIN) \
	  tools/*.o tools/*.d $(TOOL) $(UNIT_TESTS) $(FUZZ_BINS) $(MANPAGES) \
	  .build-flags
	rm -rf tests/fuzz/corpus-work tests/fuzz/lib deb-build

-include $(wildcard lib/*/*.d plugin/*.d tools/*.d)
