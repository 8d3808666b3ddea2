/* SPDX-License-Identifier: MIT */
/*
 * tools/myriad-trace/symbols.c: code addresses of another process to
 * symbols, from its /proc/PID/maps and the ELF files mapped there (libelf).
 *
 * An address A in a mapping [start, end) of file offset 'off' is at file
 * offset A - start + off; the PT_LOAD segment that holds that offset turns
 * it into the object's own address (file offset - p_offset + p_vaddr),
 * the one its symbol tables use. This works for executables (ET_EXEC, no
 * load bias) and shared objects and PIEs (ET_DYN) alike.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if MYRIAD_TRACE_ELF
#include <gelf.h>
#include <libelf.h>
#endif

#include "symbols.h"

#define CACHE_SLOTS 64 /* addresses resolved lately (steps recur) */

struct mapping {
	uint64_t start, end, off;
	uint64_t ino;
	unsigned dev_major, dev_minor;
	bool deleted; /* the file was removed or replaced since */
	char *path;   /* as in maps, " (deleted)" cut; NULL: anonymous */
};

struct fsym {
	uint64_t value, size;
	uint32_t name;	/* offset in the file's 'strs' */
	uint32_t order; /* .symtab before .dynsym, as read: the sort's tie */
};

struct seg {
	uint64_t vaddr, off, filesz;
};

/* One mapped file, read once: its symbols and loadable segments. */
struct file {
	uint64_t ino;
	unsigned dev_major, dev_minor;
	int err; /* 0, or why it could not be read (not retried) */
	struct fsym *syms;
	size_t nsyms;
	char *strs;
	struct seg *segs;
	unsigned nsegs;
	struct file *next;
};

struct slot {
	bool used;
	int r;
	uint64_t addr;
	struct sym_info si;
};

struct syms {
	pid_t pid;
	struct mapping *maps;
	size_t nmaps;
	bool maps_read;
	struct file *files;
	struct slot cache[CACHE_SLOTS];
};

struct syms *syms_open(pid_t pid)
{
	struct syms *s = calloc(1, sizeof(*s));

	if (s)
		s->pid = pid;
	return s;
}

static void maps_free(struct syms *s)
{
	size_t i;

	for (i = 0; i < s->nmaps; i++)
		free(s->maps[i].path);
	free(s->maps);
	s->maps = NULL;
	s->nmaps = 0;
}

/* (Re)read /proc/PID/maps: file-backed mappings only. 0 or -errno. */
static int maps_read(struct syms *s)
{
	char path[64], *line = NULL;
	size_t cap = 0, n = 0, ncap = 0;
	struct mapping *v = NULL, *nv;
	FILE *f;
	int r = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)s->pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		struct mapping m = { 0 };
		char perms[8], *p, *nl;
		int pos = 0;

		if (sscanf(line,
			   "%" SCNx64 "-%" SCNx64 " %7s %" SCNx64
			   " %x:%x %" SCNu64 " %n",
			   &m.start, &m.end, perms, &m.off, &m.dev_major,
			   &m.dev_minor, &m.ino, &pos) < 7 ||
		    !pos)
			continue;
		p = line + pos;
		if (*p != '/' || !m.ino)
			continue; /* anonymous, [heap], [vdso], ... */
		nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		nl = strstr(p, " (deleted)");
		if (nl && !nl[10]) {
			*nl = '\0';
			m.deleted = true;
		}
		m.path = strdup(p);
		if (!m.path) {
			r = -ENOMEM;
			break;
		}
		if (n == ncap) {
			ncap = ncap ? 2 * ncap : 64;
			nv = realloc(v, ncap * sizeof(*v));
			if (!nv) {
				free(m.path);
				r = -ENOMEM;
				break;
			}
			v = nv;
		}
		v[n++] = m;
	}
	free(line);
	fclose(f);
	maps_free(s);
	s->maps = v;
	s->nmaps = n;
	s->maps_read = true;
	/* Addresses may now mean other things (a dlclose, a dlopen). */
	memset(s->cache, 0, sizeof(s->cache));
	return r;
}

static const struct mapping *map_of(const struct syms *s, uint64_t addr)
{
	size_t i;

	for (i = 0; i < s->nmaps; i++)
		if (addr >= s->maps[i].start && addr < s->maps[i].end)
			return &s->maps[i];
	return NULL;
}

#if MYRIAD_TRACE_ELF

static int by_value(const void *a, const void *b)
{
	const struct fsym *x = a, *y = b;

	if (x->value != y->value)
		return x->value < y->value ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Append the functions of one symbol table section. 0 or -errno. */
static int add_table(struct file *f, Elf *e, Elf_Scn *scn, const GElf_Shdr *sh,
		     size_t *cap, char **strs, size_t *slen, size_t *scap)
{
	Elf_Data *d = elf_getdata(scn, NULL);
	size_t i, n, l;

	if (!d || !sh->sh_entsize)
		return 0;
	n = sh->sh_size / sh->sh_entsize;
	for (i = 0; i < n; i++) {
		GElf_Sym sym;
		const char *name;
		int type;

		if (!gelf_getsym(d, (int)i, &sym))
			continue;
		type = GELF_ST_TYPE(sym.st_info);
		if ((type != STT_FUNC && type != STT_GNU_IFUNC) ||
		    sym.st_shndx == SHN_UNDEF || !sym.st_value)
			continue;
		name = elf_strptr(e, sh->sh_link, sym.st_name);
		if (!name || !*name)
			continue;
		if (f->nsyms == *cap) {
			size_t c = *cap ? 2 * *cap : 256;
			struct fsym *v = realloc(f->syms, c * sizeof(*v));

			if (!v)
				return -ENOMEM;
			f->syms = v;
			*cap = c;
		}
		l = strlen(name) + 1;
		if (*slen + l > *scap || *slen + l > UINT32_MAX) {
			size_t c = *scap ? 2 * *scap : 4096;
			char *v;

			while (c < *slen + l)
				c *= 2;
			if (c > UINT32_MAX)
				return -EFBIG;
			v = realloc(*strs, c);
			if (!v)
				return -ENOMEM;
			*strs = v;
			*scap = c;
		}
		memcpy(*strs + *slen, name, l);
		f->syms[f->nsyms].value = sym.st_value;
		f->syms[f->nsyms].size = sym.st_size;
		f->syms[f->nsyms].name = (uint32_t)*slen;
		f->syms[f->nsyms].order = (uint32_t)f->nsyms;
		f->nsyms++;
		*slen += l;
	}
	return 0;
}

/* Read the segments and symbols of the ELF file open as 'fd'. */
static int file_read(struct file *f, int fd)
{
	size_t i, nph, cap = 0, slen = 0, scap = 0, k;
	GElf_Ehdr eh;
	Elf_Scn *scn;
	Elf *e;
	int pass, r = 0;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return -ENOTSUP;
	e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!e)
		return -ENOEXEC;
	if (elf_kind(e) != ELF_K_ELF || !gelf_getehdr(e, &eh) ||
	    elf_getphdrnum(e, &nph)) {
		r = -ENOEXEC;
		goto out;
	}
	f->segs = calloc(nph ? nph : 1, sizeof(*f->segs));
	if (!f->segs) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < nph; i++) {
		GElf_Phdr ph;

		if (gelf_getphdr(e, (int)i, &ph) && ph.p_type == PT_LOAD) {
			f->segs[f->nsegs].vaddr = ph.p_vaddr;
			f->segs[f->nsegs].off = ph.p_offset;
			f->segs[f->nsegs].filesz = ph.p_filesz;
			f->nsegs++;
		}
	}
	/* .symtab first (static functions too), then .dynsym. */
	for (pass = 0; pass < 2 && !r; pass++) {
		scn = NULL;
		while ((scn = elf_nextscn(e, scn)) && !r) {
			GElf_Shdr sh;

			if (!gelf_getshdr(scn, &sh) ||
			    sh.sh_type != (pass ? SHT_DYNSYM : SHT_SYMTAB))
				continue;
			r = add_table(f, e, scn, &sh, &cap, &f->strs, &slen,
				      &scap);
		}
	}
	if (r)
		goto out;
	/* By address; of a value's aliases keep the first read. */
	if (f->nsyms)
		qsort(f->syms, f->nsyms, sizeof(*f->syms), by_value);
	for (i = k = 0; i < f->nsyms; i++) {
		if (k && f->syms[k - 1].value == f->syms[i].value) {
			/* A sized alias tells the extent; a zero one not. */
			if (!f->syms[k - 1].size)
				f->syms[k - 1].size = f->syms[i].size;
			continue;
		}
		f->syms[k++] = f->syms[i];
	}
	f->nsyms = k;
out:
	elf_end(e);
	return r;
}

/* Open the mapped file as this process can: the right inode, or -errno. */
static int file_open(const struct syms *s, const struct mapping *m)
{
	char path[4200];
	struct stat st;
	int i, fd, r = -ENOENT;

	for (i = 0; i < 3; i++) {
		if (i == 0 && !m->deleted)
			snprintf(path, sizeof(path), "/proc/%d/root%s",
				 (int)s->pid, m->path);
		else if (i == 1) /* the very file mapped: root only */
			snprintf(path, sizeof(path),
				 "/proc/%d/map_files/%" PRIx64 "-%" PRIx64,
				 (int)s->pid, m->start, m->end);
		else if (i == 2 && !m->deleted)
			snprintf(path, sizeof(path), "%s", m->path);
		else
			continue;
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			r = -errno;
			continue;
		}
		/* A path may name another file by now: check the inode. */
		if (fstat(fd, &st) == 0 && (uint64_t)st.st_ino == m->ino)
			return fd;
		close(fd);
		r = -ESTALE;
	}
	return r;
}

static struct file *file_of(struct syms *s, const struct mapping *m)
{
	struct file *f;
	int fd;

	for (f = s->files; f; f = f->next)
		if (f->ino == m->ino && f->dev_major == m->dev_major &&
		    f->dev_minor == m->dev_minor)
			return f;
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->ino = m->ino;
	f->dev_major = m->dev_major;
	f->dev_minor = m->dev_minor;
	fd = file_open(s, m);
	if (fd < 0) {
		f->err = fd;
	} else {
		f->err = file_read(f, fd);
		close(fd);
	}
	f->next = s->files;
	s->files = f;
	return f;
}

/* The symbol that holds object address 'a', or NULL. */
static const struct fsym *sym_of(const struct file *f, uint64_t a)
{
	size_t lo = 0, hi = f->nsyms;
	const struct fsym *y;

	/* The last symbol that starts at or before 'a'. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (f->syms[mid].value <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo)
		return NULL;
	y = &f->syms[lo - 1];
	/* Past a sized symbol's end is between functions; unsized: take it. */
	if (y->size && a - y->value >= y->size)
		return NULL;
	return y;
}

static int resolve(struct syms *s, const struct mapping *m, uint64_t addr,
		   struct sym_info *out)
{
	const struct fsym *y;
	struct file *f = file_of(s, m);
	uint64_t foff = addr - m->start + m->off;
	unsigned i;

	if (!f)
		return -ENOMEM;
	if (f->err)
		return 0; /* the object's name is all we can say */
	for (i = 0; i < f->nsegs; i++) {
		const struct seg *g = &f->segs[i];

		if (foff >= g->off && foff - g->off < g->filesz) {
			out->obj_addr = foff - g->off + g->vaddr;
			break;
		}
	}
	if (i == f->nsegs)
		return 0;
	y = sym_of(f, out->obj_addr);
	if (y) {
		snprintf(out->name, sizeof(out->name), "%s", f->strs + y->name);
		out->off = out->obj_addr - y->value;
	}
	return 0;
}

static void files_free(struct syms *s)
{
	struct file *f, *n;

	for (f = s->files; f; f = n) {
		n = f->next;
		free(f->syms);
		free(f->strs);
		free(f->segs);
		free(f);
	}
	s->files = NULL;
}

#else /* no libelf: the object's name only */

static int resolve(struct syms *s, const struct mapping *m, uint64_t addr,
		   struct sym_info *out)
{
	(void)s;
	(void)m;
	(void)addr;
	(void)out;
	return -ENOTSUP;
}

static void files_free(struct syms *s)
{
	(void)s;
}

#endif

int syms_lookup(struct syms *s, uint64_t addr, struct sym_info *out)
{
	struct slot *c = &s->cache[(addr >> 4) % CACHE_SLOTS];
	const struct mapping *m;
	const char *b;
	int r;

	memset(out, 0, sizeof(*out));
	if (c->used && c->addr == addr) {
		*out = c->si;
		return c->r;
	}
	m = map_of(s, addr);
	if (!m) {
		/* Not read yet, or mapped since: read the maps again. */
		r = maps_read(s);
		if (r < 0 && !s->nmaps)
			return r == -ENOENT ? -ENOENT : r;
		m = map_of(s, addr);
	}
	if (!m) {
		r = -ENOENT;
	} else {
		b = strrchr(m->path, '/');
		snprintf(out->object, sizeof(out->object), "%s",
			 b ? b + 1 : m->path);
		r = resolve(s, m, addr, out);
	}
	if (r != -ENOMEM) {
		c->used = true;
		c->addr = addr;
		c->r = r;
		c->si = *out;
	}
	return r;
}

char *syms_format(const struct sym_info *si, uint64_t addr, char *buf,
		  size_t len)
{
	if (si->name[0] && si->off)
		snprintf(buf, len, "%s+0x%" PRIx64 " (%s)", si->name, si->off,
			 si->object);
	else if (si->name[0])
		snprintf(buf, len, "%s (%s)", si->name, si->object);
	else if (si->object[0] && si->obj_addr)
		snprintf(buf, len, "0x%" PRIx64 " (%s)", si->obj_addr,
			 si->object);
	else if (si->object[0])
		snprintf(buf, len, "0x%" PRIx64 " (%s)", addr, si->object);
	else
		snprintf(buf, len, "0x%" PRIx64, addr);
	return buf;
}

void syms_close(struct syms *s)
{
	if (!s)
		return;
	maps_free(s);
	files_free(s);
	free(s);
}
