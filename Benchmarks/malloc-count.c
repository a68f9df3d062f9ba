// Benchmarks/malloc-count.c: an LD_PRELOAD shim counting malloc/calloc/realloc calls, printed to stderr at exit.
// cc -O2 -shared -fPIC -o /tmp/malloc-count.so Benchmarks/malloc-count.c
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <unistd.h>
static atomic_long n;
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern int __libc_posix_memalign(void **, size_t, size_t);
void *malloc(size_t s) { atomic_fetch_add(&n, 1); return __libc_malloc(s); }
void *calloc(size_t a, size_t b) { atomic_fetch_add(&n, 1); return __libc_calloc(a, b); }
void *realloc(void *p, size_t s) { atomic_fetch_add(&n, 1); return __libc_realloc(p, s); }
__attribute__((destructor)) static void report(void) { char b[64]; int k = snprintf(b, 64, "mallocs %ld\n", atomic_load(&n)); write(2, b, k); }
