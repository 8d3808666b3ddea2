#!/usr/bin/env bash
# tests/style/format.sh: the C sources follow .clang-format (kernel style).
# Exit 0 when clean, 1 with the offending files, 77 without clang-format.
cd "$(dirname "$0")/../.." || exit 1
cf=$(command -v clang-format || command -v clang-format-14) || {
	echo "clang-format not installed: style not checked" >&2
	exit 77
}
bad=0
for f in $(git ls-files '*.c' '*.h' 2>/dev/null || find sched policy bench examples tests include -name '*.[ch]'); do
	case "$f" in bench/peers/*) continue ;; esac
	if ! "$cf" --style=file --dry-run -Werror "$f" >/dev/null 2>&1; then
		echo "not formatted: $f (run: clang-format -i $f)" >&2
		bad=1
	fi
done
exit $bad
