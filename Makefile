# child_txn: autonomous child transactions and group commit for PostgreSQL 15.
# Built with PGXS as C++17.  See README.md for the supported workflows
# (scripts/setup.sh and scripts/test.sh); this Makefile only builds and
# installs.

MODULE_big = child_txn
SRCS = $(sort $(wildcard src/*.cpp src/*/*.cpp))
OBJS = $(SRCS:.cpp=.o)

EXTENSION = child_txn
DATA = sql/child_txn--1.0.sql
PGFILEDESC = "child_txn - child (autonomous) transactions and group commit"

PG_CONFIG ?= pg_config

# The server headers trip -Wextra in ways we cannot fix (unused parameters in
# inline functions, 'register' in two headers); our own code is held to the
# rest of -Wall -Wextra.
PG_CXXFLAGS = -std=c++17 -Wall -Wextra -Wno-unused-parameter \
	-Wno-missing-field-initializers -Wno-register -Wno-sign-compare -Isrc
SHLIB_LINK += -lstdc++

# PGXS would build LLVM bitcode for JIT inlining with clang's default C++
# dialect; nothing here is worth inlining into JIT-compiled expressions.
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies; rebuild everything when a header changes.
$(OBJS): $(wildcard src/*.hpp src/*/*.hpp)
