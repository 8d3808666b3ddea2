#!/usr/bin/env bash
# tests/api/exports.sh: what libmyriad shows the world.
# 1. The shared library exports only myriad_* symbols, and every function
#    declared MYRIAD_API in include/ is among them.
# 2. `meson install --destdir` installs the public headers, the libraries
#    and myriad.pc, and nothing from sched/ or policy/.
# 3. A small program built with `pkg-config --cflags --libs myriad` against
#    that destdir compiles, links and runs.
#   bash tests/api/exports.sh BUILD_DIR      (meson passes the build dir)
# Exit 0 pass, 1 fail, 77 skip (a tool is missing).
set -uo pipefail

build=${1:?usage: exports.sh BUILD_DIR}
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
fail=0
failf() { echo "FAIL: $*" >&2; fail=1; }

for tool in nm meson pkg-config "${CC:-cc}"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: $tool not found"
        exit 77
    fi
done

lib=$build/libmyriad.so
[ -e "$lib" ] || { echo "FAIL: $lib not built" >&2; exit 1; }

# --- 1. exported symbols -------------------------------------------------------
# Defined dynamic symbols, less the version node (type A), version suffix cut.
syms=$(nm -D --defined-only "$lib" | awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' | sort -u)
[ -n "$syms" ] || failf "nm -D $lib shows no defined symbols"
stray=$(grep -v '^myriad_' <<<"$syms")
if [ -n "$stray" ]; then
    failf "symbols exported without the myriad_ prefix (expected none):"
    sed 's/^/    /' <<<"$stray" >&2
fi
# Every MYRIAD_API name in the public headers is exported.
declared=$(grep -h 'MYRIAD_API' "$src"/include/myriad/*.h \
    | grep -v '#define' \
    | grep -o 'myriad_[a-z0-9_]*[[:space:]]*[(;]' \
    | tr -d '(; \t' | sort -u)
[ -n "$declared" ] || failf "found no MYRIAD_API declarations in include/myriad"
for d in $declared; do
    grep -qx "$d" <<<"$syms" || failf "$d is declared MYRIAD_API but not exported"
done
soname=$(readelf -d "$lib" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if command -v readelf >/dev/null 2>&1 && [ "$soname" != libmyriad.so.0 ]; then
    failf "SONAME: expected libmyriad.so.0, got '$soname'"
fi

# --- 2. meson install --------------------------------------------------------------
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest
if ! meson install -C "$build" --no-rebuild --destdir "$dest" >"$tmp/install.log" 2>&1; then
    failf "meson install --destdir failed:"
    tail -n 20 "$tmp/install.log" >&2
    exit 1
fi
(cd "$dest" && find . \( -type f -o -type l \) | sed 's|^\./|/|' | sort) >"$tmp/files"

want_file() { # a pattern (grep -E) that some installed path must match
    grep -Eq "$1" "$tmp/files" || failf "nothing installed matches $1"
}
want_file '/include/myriad\.h$'
for h in "$src"/include/myriad/*.h; do
    want_file "/include/myriad/$(basename "$h")\$"
done
want_file '/libmyriad\.so$'
want_file '/libmyriad\.so\.0$'
want_file '/libmyriad\.so\.[0-9]+\.[0-9]+\.[0-9]+$'
want_file '/libmyriad\.a$'
want_file '/pkgconfig/myriad\.pc$'

# Headers: exactly the public ones; nothing of sched/ or policy/.
expected_h=$( (echo myriad.h; cd "$src/include/myriad" && ls -- *.h | sed 's|^|myriad/|') | sort)
got_h=$(grep -E '\.h$' "$tmp/files" | sed 's|.*/include/||' | sort)
if [ "$got_h" != "$expected_h" ]; then
    failf "installed headers differ from include/:"
    diff <(echo "$expected_h") <(echo "$got_h") | sed 's/^/    /' >&2
fi
for f in sched.h spin.h futex.h; do
    grep -q "/$f\$" "$tmp/files" && failf "internal header $f was installed"
done
grep -Eq '/(sched|policy)/' "$tmp/files" && failf "something under sched/ or policy/ was installed: $(grep -E '/(sched|policy)/' "$tmp/files" | tr '\n' ' ')"
grep -Eq 'myriad_small|test-' "$tmp/files" && failf "a test artifact was installed: $(grep -E 'myriad_small|test-' "$tmp/files" | tr '\n' ' ')"

# --- 3. build a program against the installed copy ---------------------------------
pc=$(grep '/pkgconfig/myriad\.pc$' "$tmp/files" | head -n 1)
if [ -n "$pc" ]; then
    pcdir=$dest$(dirname "$pc")
    libdir=$dest$(dirname "$(grep '/libmyriad\.so$' "$tmp/files" | head -n 1)")
    cat >"$tmp/prog.c" <<'EOF'
#include <stdio.h>
#include <myriad.h>

struct fib { MYRIAD_CORO_FIELD; int n; myriad_task_t *a, *b; };

static int fib_step(myriad_task_t *self, void *p)
{
	struct fib *st = p, c = { 0 };

	MYRIAD_BEGIN(st);
	if (st->n < 2) {
		myriad_task_set_result(self, st->n);
		return MYRIAD_DONE;
	}
	c.n = st->n - 1;
	st->a = myriad_task_spawn(self, fib_step, &c, sizeof(c), 0, NULL);
	c.n = st->n - 2;
	st->b = myriad_task_spawn(self, fib_step, &c, sizeof(c), 0, NULL);
	MYRIAD_JOIN(st, self);
	myriad_task_set_result(self, myriad_task_result(st->a) +
					     myriad_task_result(st->b));
	MYRIAD_END(st);
}

int main(void)
{
	struct myriad_rt_opts o = { .sz = sizeof(o), .workers = 2 };
	struct fib f = { .n = 15 };
	int64_t r = 0;
	int err, rc;
	myriad_rt_t *rt = myriad_rt_create(&o, &err);

	if (!rt)
		return 1;
	rc = myriad_rt_block_on(rt, fib_step, &f, sizeof(f), &r);
	if (myriad_rt_destroy(rt) || rc || r != 610) {
		fprintf(stderr, "fib(15): rc %d, got %lld, expected 610\n",
			rc, (long long)r);
		return 1;
	}
	printf("fib(15) = %lld\n", (long long)r);
	return 0;
}
EOF
    # A sanitizer build's library needs its runtime in the program too.
    san=()
    needed=$(readelf -d "$lib" 2>/dev/null | grep NEEDED || true)
    case $needed in *libtsan*) san+=(-fsanitize=thread) ;; esac
    case $needed in *libasan*) san+=(-fsanitize=address) ;; esac
    case $needed in *libubsan*) san+=(-fsanitize=undefined) ;; esac
    # The .pc names the final prefix; the sysroot maps it into the destdir.
    if ! flags=$(PKG_CONFIG_PATH=$pcdir PKG_CONFIG_SYSROOT_DIR=$dest \
                 pkg-config --cflags --libs myriad 2>"$tmp/pc.err"); then
        failf "pkg-config --cflags --libs myriad: $(cat "$tmp/pc.err")"
    else
        case " $flags " in
        *" -I$dest"*) ;;
        *) failf "pkg-config cflags do not point into the destdir: $flags" ;;
        esac
        # shellcheck disable=SC2086  # flags are words on purpose
        if ! "${CC:-cc}" "${san[@]}" -o "$tmp/prog" "$tmp/prog.c" $flags 2>"$tmp/cc.err"; then
            failf "building against the installed copy ($flags):"
            cat "$tmp/cc.err" >&2
        elif ! out=$(LD_LIBRARY_PATH=$libdir "$tmp/prog" 2>&1); then
            failf "the program built against the installed copy failed: $out"
        elif [ "$out" != "fib(15) = 610" ]; then
            failf "the installed copy: expected 'fib(15) = 610', got '$out'"
        elif command -v ldd >/dev/null 2>&1; then
            # Not "ldd | grep -q": grep's early exit would fail the pipe.
            loaded=$(LD_LIBRARY_PATH=$libdir ldd "$tmp/prog" 2>&1)
            case $loaded in
            *"$libdir/libmyriad.so.0"*) ;;
            *) failf "the program did not load libmyriad from the destdir: $loaded" ;;
            esac
        fi
    fi
fi

if [ "$fail" != 0 ]; then
    echo "exports: FAIL" >&2
    exit 1
fi
echo "exports: PASS ($(wc -l <<<"$syms") symbols, $(wc -l <"$tmp/files") files installed)"
