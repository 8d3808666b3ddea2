#!/usr/bin/env bash
# tests/style/layers.sh: the library's dependencies point one way
# (docs/design.md, "Layers"): no file includes a header of a layer above
# its own, and the tools include only base/, their own eBPF loader in bpf/
# and the public headers. Exit 0 when clean, 1 naming every violation.
#   layers.sh [ROOT]   (ROOT: the tree to check, default this checkout)
root=${1:-"$(dirname "$0")/../.."}
cd "$root" || exit 1

# The layers, lowest first. A folder may include its own headers and those
# of any folder of a lower rank; folders of one rank may not include each
# other. include/ is the public API (included as <myriad/...>).
declare -A rank=(
	[include]=0
	[base]=1
	[signals]=2
	[bpf]=3 [policy]=3
	[sched]=4
	[io]=5
	[infer]=6
	[fleet]=7
)
# What the tools may include besides the public headers.
declare -A tool_ok=([base]=1 [bpf]=1 [tools]=1)

bad=0
files=$( (git ls-files '*.c' '*.h' 2>/dev/null ||
	find . -name '*.[ch]' | sed 's|^\./||') | sort -u)
for f in $files; do
	top=${f%%/*}
	[ "$top" = "$f" ] && continue
	if [ -n "${rank[$top]+x}" ]; then
		kind=lib
	elif [ "$top" = tools ]; then
		kind=tool
	else
		continue
	fi
	# Every quoted include that names a folder: "dir/file.h".
	while IFS=: read -r line inc; do
		dir=${inc%%/*}
		[ "$dir" = "$inc" ] && continue # same folder
		case "$dir" in
		. | ..)
			echo "$f:$line: includes \"$inc\" by a relative path" >&2
			bad=1
			continue
			;;
		esac
		if [ "$kind" = tool ]; then
			if [ -z "${tool_ok[$dir]+x}" ]; then
				echo "$f:$line: a tool includes \"$inc\", private to the library" >&2
				bad=1
			fi
			continue
		fi
		if [ -z "${rank[$dir]+x}" ]; then
			echo "$f:$line: includes \"$inc\" from $dir/, which is no layer of the library" >&2
			bad=1
		elif [ "$dir" != "$top" ] &&
			[ "${rank[$dir]}" -ge "${rank[$top]}" ]; then
			echo "$f:$line: $top/ (layer ${rank[$top]}) includes \"$inc\" of $dir/ (layer ${rank[$dir]})" >&2
			bad=1
		fi
	done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
		sed 's/^\([0-9]*\):[^"]*"\([^"]*\)".*/\1:\2/')
done
[ $bad -eq 0 ] && echo "layers: every include points down"
exit $bad
