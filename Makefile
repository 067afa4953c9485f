# wsring: `make` builds ./wsring, `make check` installs what is missing and runs
# every test (unit, integration, and the unit suite again under ASan/UBSan),
# `make demo` shows users being routed, `make fuzz` runs the libFuzzer targets.

PROG      := wsring
VERSION   := 0.1.0
PKGS      := libevent libevent_pthreads libevent_openssl libcurl jansson openssl libxxhash liburing
TEST_PKGS := cmocka
DEB_PKGS  := build-essential pkg-config clang libclang-rt-14-dev clang-format libevent-dev \
             libcurl4-openssl-dev libjansson-dev libssl-dev libxxhash-dev liburing-dev libcmocka-dev \
             python3 python3-pytest python3-websockets python3-prometheus-client python3-requests \
             python3-cryptography curl \
             chromium systemd etcd-server etcd-client openssl \
             zookeeper default-jre-headless libzookeeper-st-dev libslf4j-java python3-kazoo
PYTHON    := /usr/bin/python3

BUILD        ?= build
CFLAGS       ?= -O2 -g
SAN          ?=
FUZZ_SECONDS ?= 60
PREFIX       ?= /usr/local
DESTDIR      ?=

WARN       := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
              -Wpointer-arith -Wformat=2 -Wvla -Wundef
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) $(TEST_PKGS) 2>/dev/null)
# -lzookeeper_st: Debian's single-threaded ZooKeeper C client ships no pkg-config file.
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lzookeeper_st -lpthread
TEST_LIBS  := $(shell pkg-config --libs $(TEST_PKGS) 2>/dev/null)
ALL_CFLAGS  = -std=c11 -D_GNU_SOURCE -DWSRING_VERSION='"$(VERSION)"' -I. $(WARN) $(CFLAGS) \
              $(SAN) -MMD -MP $(PKG_CFLAGS)

LIB_SRC := $(wildcard ring/*.c conf/*.c discovery/*.c) $(filter-out proxy/main.c,$(wildcard proxy/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB     := $(BUILD)/lib$(PROG).a
TESTS   := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test_*.c))
TEST_HELPERS := $(wildcard tests/helpers.c)
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZERS    := $(FUZZ_NAMES:%=$(BUILD)/fuzz_%)

SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
SAN_ENV   := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1

.PHONY: all test check asan integration fuzz fuzzers deps demo bench bench-ring install \
        format format-check clean

all: $(PROG)

# Replaced by rename, so a running ./wsring (a test, the demo) never blocks the build.
$(PROG): $(BUILD)/$(PROG)
	cp $< $@.tmp && mv -f $@.tmp $@

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/$(PROG): $(BUILD)/proxy/main.o $(LIB)
	$(CC) $(SAN) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/%: tests/%.c $(TEST_HELPERS) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(TEST_HELPERS) $(LIB) $(PKG_LIBS) $(TEST_LIBS)

# The smuggling corpus (tests/smuggling_corpus.py) as records, beside test_smuggling.
$(BUILD)/tests/smuggling_corpus.bin: tests/smuggling_corpus.py
	@mkdir -p $(@D)
	$(PYTHON) $< --records $@
$(BUILD)/tests/test_smuggling: $(BUILD)/tests/smuggling_corpus.bin

# Unit tests: one cmocka binary per module.
test: $(TESTS)
	@set -e; for t in $(TESTS); do echo "== $$t"; $(SAN_ENV) $$t; done

# A fresh machine: install packages first, then re-read this file in sub-makes
# so that pkg-config sees them.
check: deps
	$(MAKE) all test
	$(MAKE) CC=clang BUILD=build/clang all-objects
	$(MAKE) format-check
	$(MAKE) integration
	$(MAKE) asan

# Every object and test binary, without installing ./wsring (the clang build).
all-objects: $(BUILD)/$(PROG) $(TESTS)

# The unit tests, then the integration suite against an ASan+UBSan wsring (a
# sanitizer report or an unclean exit fails the test that started it). The one
# test that only waits (a minute of idle blocking queries, counted at the
# double) runs once, in `make integration`, to keep `make check` near 20 min.
ASAN_PYTEST_ARGS ?= --deselect test_consul.py::test_idle_cluster_blocks_instead_of_polling
asan:
	$(MAKE) BUILD=build/asan SAN="$(SAN_FLAGS)" CFLAGS="-O1 -g" test build/asan/$(PROG)
	cd tests/integration && $(SAN_ENV) WSRING_BIN=$(CURDIR)/build/asan/$(PROG) \
	    $(PYTHON) -m pytest -q -p no:cacheprovider $(ASAN_PYTEST_ARGS)

# Integration tests: real stock backends and clients driven by pytest; the
# Consul double's own tests; the Python and JavaScript ring ports against the C ring.
integration: all
	cd tests/consul && $(PYTHON) -m pytest -q -p no:cacheprovider
	$(PYTHON) -m pytest -q -p no:cacheprovider clients/python
	node --test clients/js/
	@if [ -d tests/integration ] && ls tests/integration/test_*.py >/dev/null 2>&1; then \
	    cd tests/integration && WSRING_BIN=$(CURDIR)/wsring $(PYTHON) -m pytest -q -p no:cacheprovider; \
	else echo "integration: no tests yet"; fi

fuzz:
	$(MAKE) CC=clang BUILD=build/fuzz SAN="-fsanitize=fuzzer-no-link,address,undefined" fuzzers
	$(PYTHON) tests/smuggling_corpus.py --head build/fuzz/corpus/head --http1 build/fuzz/corpus/http1
	@set -e; for n in $(FUZZ_NAMES); do mkdir -p build/fuzz/corpus/$$n; \
	    echo "== fuzz_$$n for $(FUZZ_SECONDS)s"; \
	    build/fuzz/fuzz_$$n -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build/fuzz/ \
	        $$( [ -f tests/fuzz/$$n.dict ] && echo -dict=tests/fuzz/$$n.dict ) \
	        build/fuzz/corpus/$$n tests/fuzz/corpus/$$n; done

fuzzers: $(FUZZERS)

$(BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(LIB)
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< $(LIB) $(PKG_LIBS)

demo: deps
	$(MAKE) all
	@sh tests/demo.sh

bench-ring: deps
	$(MAKE) $(BUILD)/bench/ring_bench
	$(BUILD)/bench/ring_bench

# wsring beside HAProxy and NGINX on the same backends and load (bench/README.md).
bench: deps
	$(MAKE) all $(BUILD)/bench/echo_backend $(BUILD)/bench/loadgen
	BUILD=$(BUILD) sh bench/run.sh

$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIB) $(PKG_LIBS)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)/etc/wsring $(DESTDIR)/lib/systemd/system
	install -m 0755 $(PROG) $(DESTDIR)$(PREFIX)/bin/$(PROG)
	sed 's|/usr/local/bin/wsring|$(PREFIX)/bin/$(PROG)|g' systemd/wsring.service \
	    > $(DESTDIR)/lib/systemd/system/wsring.service.tmp
	chmod 0644 $(DESTDIR)/lib/systemd/system/wsring.service.tmp
	mv -f $(DESTDIR)/lib/systemd/system/wsring.service.tmp $(DESTDIR)/lib/systemd/system/wsring.service
	@if [ -e $(DESTDIR)/etc/wsring/proxy.conf ]; then \
	    echo "keeping existing $(DESTDIR)/etc/wsring/proxy.conf"; \
	else install -m 0644 conf/proxy.conf $(DESTDIR)/etc/wsring/proxy.conf; fi
	@echo "next (docs/DEPLOY.md): useradd --system --no-create-home --shell /usr/sbin/nologin wsring;" \
	    "systemctl daemon-reload; systemctl enable --now wsring"

deps:
	@if ! pkg-config --exists $(PKGS) $(TEST_PKGS) || ! command -v clang >/dev/null \
	    || ! command -v clang-format >/dev/null || ! command -v curl >/dev/null \
	    || ! command -v chromium >/dev/null || ! command -v systemd-analyze >/dev/null \
	    || ! command -v openssl >/dev/null \
	    || ! command -v etcd >/dev/null \
	    || ! [ -f /usr/include/zookeeper/zookeeper.h ] || ! [ -f /usr/share/java/zookeeper.jar ] \
	    || ! command -v java >/dev/null \
	    || ! $(PYTHON) -c 'import pytest, websockets, prometheus_client, requests, cryptography, kazoo' \
	        2>/dev/null; then \
	    if [ "$$(id -u)" != 0 ]; then \
	        echo "missing packages; as root run: apt-get install $(DEB_PKGS)" >&2; exit 1; fi; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(DEB_PKGS); \
	fi

FORMAT_SRC = $(wildcard */*.c */*.h tests/fuzz/*.c)

format:
	clang-format -i $(FORMAT_SRC)

format-check:
	clang-format --dry-run -Werror $(FORMAT_SRC)

clean:
	rm -rf build $(PROG)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
