/* SPDX-License-Identifier: MIT */
/*
 * tools/myriad-trace/symbols.h: code addresses of another process to
 * symbols: its /proc/PID/maps, and the ELF symbol tables of the mapped files.
 */
#ifndef MYRIAD_TRACE_SYMBOLS_H
#define MYRIAD_TRACE_SYMBOLS_H

#include <stdint.h>
#include <sys/types.h>

struct syms;

/* An address, resolved. */
struct sym_info {
	char name[256];	  /* the function; "" when no symbol covers it */
	uint64_t off;	  /* the address less the symbol's start */
	char object[128]; /* the mapped file's basename; "" when none */
	/*
	 * The address in the object's own (link-time) addresses, what
	 * addr2line -e OBJECT takes; 0 when not in a file's loaded segment.
	 */
	uint64_t obj_addr;
};

/*
 * The resolver of process 'pid': reads its maps on the first lookup and
 * again when an address falls outside them (a library loaded since); the
 * files, through /proc/PID/root (another mount namespace) or, removed or
 * replaced since, /proc/PID/map_files. Each file's symbols are read once
 * (.symtab, then .dynsym). Returns NULL only when out of memory.
 */
struct syms *syms_open(pid_t pid);

/*
 * Resolve 'addr'. Returns 0 (out->name may still be "": a stripped
 * object, or an address between functions), -ENOENT (no file mapped
 * there: anonymous memory, JIT code, or the process is gone), -ENOTSUP
 * (built without libelf: out->object only). 'out' is always filled.
 */
int syms_lookup(struct syms *s, uint64_t addr, struct sym_info *out);

/*
 * 'addr' for a person: "sym (object)", "sym+0x1a (object)", "0x1234
 * (object)" (no symbol: the object's own address), or "0x7f..." (no
 * file). Returns 'buf'.
 */
char *syms_format(const struct sym_info *si, uint64_t addr, char *buf,
		  size_t len);

void syms_close(struct syms *s);

#endif
