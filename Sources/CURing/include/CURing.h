// CURing: the part of liburing that Swift cannot import by itself.
//
// Swift imports liburing's static inline functions directly (io_uring_get_sqe, io_uring_prep_*,
// io_uring_buf_ring_add, ...). What it cannot import lives here: flags built from enum bits,
// constants newer than Debian's liburing 2.3, and the buffer-ring setup that 2.3 lacks.
//
// Include order matters: libc first, then <linux/io_uring.h>, then <liburing.h>. liburing.h
// defines _GNU_SOURCE/_XOPEN_SOURCE and its own copy of the uapi header; the kernel's copy must
// win, or a module that also sees swift-system's CSystem fails to build.
#ifndef CURING_H
#define CURING_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <linux/io_uring.h>
#include <liburing.h>

// Newer than liburing 2.3. Each is checked before use: MIN_TIMEOUT in the ring's features at set-up,
// ACCEPT_POLL_FIRST by falling back to a plain accept when the kernel answers EINVAL.
#ifndef IORING_ACCEPT_POLL_FIRST
#define IORING_ACCEPT_POLL_FIRST (1U << 2)
#endif
#ifndef IORING_FEAT_MIN_TIMEOUT
#define IORING_FEAT_MIN_TIMEOUT (1U << 15)
#endif
// A socket's own ephemeral port range (kernel 6.3; glibc 2.36's headers lack it): checked by falling
// back to the whole range when setsockopt answers ENOPROTOOPT or EINVAL.
#ifndef IP_LOCAL_PORT_RANGE
#define IP_LOCAL_PORT_RANGE 51
#endif
static const int32_t curing_ip_local_port_range = IP_LOCAL_PORT_RANGE;
// Incremental buffer consumption (kernel 6.12): the `pad` field of liburing 2.3's io_uring_buf_reg is
// the kernel's `flags`. Checked at set-up: a kernel that refuses it (EINVAL) gets the plain ring again.
#ifndef IOU_PBUF_RING_INC
#define IOU_PBUF_RING_INC 2
#endif
#ifndef IORING_CQE_F_BUF_MORE
#define IORING_CQE_F_BUF_MORE (1U << 4)
#endif
// Receive bundles (kernel 6.10): one receive CQE covers several consecutive ring buffers. Checked in
// the ring's features at set-up (IORING_FEAT_RECVSEND_BUNDLE).
#ifndef IORING_RECVSEND_BUNDLE
#define IORING_RECVSEND_BUNDLE (1U << 4)
#endif
#ifndef IORING_FEAT_RECVSEND_BUNDLE
#define IORING_FEAT_RECVSEND_BUNDLE (1U << 14)
#endif
// No SQ index array (kernel 6.6): the ring takes SQEs in order, slot i is SQE i. liburing 2.3 would
// write its identity array at sq_off.array, which the kernel reports as 0 for such a ring: over the
// ring's head and tail. `curing_queue_init_no_sqarray` sets the ring up without that write.
#ifndef IORING_SETUP_NO_SQARRAY
#define IORING_SETUP_NO_SQARRAY (1U << 16)
#endif
static const uint32_t curing_setup_no_sqarray = IORING_SETUP_NO_SQARRAY;
static const uint32_t curing_feat_single_mmap = IORING_FEAT_SINGLE_MMAP;
// Zero-copy send (kernel 6.0; Debian's 6.1 uapi header has the opcode and flags): a send whose result
// completion has IORING_CQE_F_MORE is followed by a notification (IORING_CQE_F_NOTIF) once the kernel
// no longer reads the bytes. Checked at set-up with the opcode probe.
#ifndef IORING_CQE_F_NOTIF
#define IORING_CQE_F_NOTIF (1U << 3)
#endif
static const uint32_t curing_cqe_f_notif = IORING_CQE_F_NOTIF;
static const uint8_t curing_op_send_zc = IORING_OP_SEND_ZC;
static const uint16_t curing_recvsend_bundle = IORING_RECVSEND_BUNDLE;
static const uint32_t curing_feat_recvsend_bundle = IORING_FEAT_RECVSEND_BUNDLE;
static const uint16_t curing_pbuf_ring_inc = IOU_PBUF_RING_INC;
static const uint32_t curing_cqe_f_buf_more = IORING_CQE_F_BUF_MORE;

// Direct descriptors (`UringFeatures.directDescriptors`): accepted sockets live only in the ring's
// fixed file table. The one option the engine sets on an accepted socket after accept (SO_LINGER for
// an abortive close) goes through the ring as a socket uring_cmd, SOCKET_URING_OP_SETSOCKOPT (kernel
// 6.7; Debian 12's uapi header, 6.1, has neither the op nor the SQE's option fields). Checked at
// set-up by setting SO_LINGER on a throw-away socket through the ring; any failure drops the feature.
#ifndef SOCKET_URING_OP_SETSOCKOPT
#define SOCKET_URING_OP_SETSOCKOPT 3
#endif
static const uint8_t curing_iosqe_fixed_file = IOSQE_FIXED_FILE;
static const uint32_t curing_file_index_alloc = IORING_FILE_INDEX_ALLOC;

// Where kernel 6.7's io_uring_sqe keeps a socket command's fields, as offsets into the 64-byte SQE:
// cmd_op in the `off` union, level and optname in the `addr` union, optlen in the `file_index`
// union, optval in the `addr3` union.
_Static_assert(offsetof(struct io_uring_sqe, cmd_op) == 8, "cmd_op");
_Static_assert(offsetof(struct io_uring_sqe, addr) == 16, "level, optname");
_Static_assert(offsetof(struct io_uring_sqe, file_index) == 44, "optlen");
_Static_assert(offsetof(struct io_uring_sqe, addr3) == 48, "optval");

/// setsockopt(fd, level, optname, optval, optlen) as an IORING_OP_URING_CMD (liburing 2.4's
/// io_uring_prep_cmd_sock). `fd` is a fixed-file index when the caller adds IOSQE_FIXED_FILE. The kernel
/// reads `optval` when the request runs, so it must outlive the submission.
static inline void curing_prep_setsockopt(struct io_uring_sqe *sqe, int fd, int level, int optname,
                                          const void *optval, int optlen) {
    io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fd, NULL, 0, 0);
    sqe->cmd_op = SOCKET_URING_OP_SETSOCKOPT;
    uint32_t *names = (uint32_t *)&sqe->addr;
    names[0] = (uint32_t)level;
    names[1] = (uint32_t)optname;
    sqe->file_index = (uint32_t)optlen;
    sqe->addr3 = (uint64_t)(uintptr_t)optval;
}

/// Whether this kernel sets a socket option through the ring: SO_LINGER {1, 0} on a fresh TCP socket
/// (not fixed) by SOCKET_URING_OP_SETSOCKOPT, submitted and waited for on `ring`, which must have
/// nothing else in flight. Returns the completion's result (0, or a negated errno: EOPNOTSUPP before
/// 6.7, EINVAL before 5.19's uring_cmd), or a negated errno of the socket or the submission.
/// Three system calls: socket, io_uring_enter, close.
int curing_probe_ring_setsockopt(struct io_uring *ring);

// Flags that liburing spells as shifts of enum bits; Swift does not import those macros.
static const uint8_t curing_iosqe_io_link = IOSQE_IO_LINK;
static const uint8_t curing_iosqe_buffer_select = IOSQE_BUFFER_SELECT;
static const uint32_t curing_cqe_f_buffer = IORING_CQE_F_BUFFER;
static const uint32_t curing_cqe_f_more = IORING_CQE_F_MORE;
static const uint32_t curing_cqe_buffer_shift = IORING_CQE_BUFFER_SHIFT;
static const uint16_t curing_accept_poll_first = IORING_ACCEPT_POLL_FIRST;
static const uint32_t curing_sq_cq_overflow = IORING_SQ_CQ_OVERFLOW;
static const uint32_t curing_setup_single_issuer = IORING_SETUP_SINGLE_ISSUER;
static const uint32_t curing_setup_defer_taskrun = IORING_SETUP_DEFER_TASKRUN;
static const uint32_t curing_setup_coop_taskrun = IORING_SETUP_COOP_TASKRUN;
static const uint32_t curing_setup_submit_all = IORING_SETUP_SUBMIT_ALL;
static const uint32_t curing_setup_cqsize = IORING_SETUP_CQSIZE;
static const uint32_t curing_enter_getevents = IORING_ENTER_GETEVENTS;
static const uint32_t curing_enter_ext_arg = IORING_ENTER_EXT_ARG;
static const uint32_t curing_enter_registered_ring = IORING_ENTER_REGISTERED_RING;
static const uint32_t curing_feat_nodrop = IORING_FEAT_NODROP;
static const uint32_t curing_feat_ext_arg = IORING_FEAT_EXT_ARG;
static const uint32_t curing_feat_min_timeout = IORING_FEAT_MIN_TIMEOUT;

/// Publishes the SQEs prepared since the last call to the kernel; returns how many await submission.
/// (liburing keeps this step private; we need it to issue io_uring_enter ourselves and count it.)
unsigned curing_flush_sq(struct io_uring *ring);

/// The ring fd to pass to io_uring_enter: the registered index once io_uring_register_ring_fd succeeded.
static inline int curing_enter_fd(const struct io_uring *ring) { return ring->enter_ring_fd; }

/// True once io_uring_register_ring_fd succeeded (liburing's private INT_FLAG_REG_RING).
static inline int curing_ring_fd_registered(const struct io_uring *ring) { return ring->int_flags & 1; }

/// Allocates page-aligned memory for `entries` buffer descriptors and registers it as group `bgid`
/// (io_uring_setup_buf_ring, which liburing 2.3 lacks) with registration `flags` (IOU_PBUF_RING_INC or 0).
/// Returns NULL and sets *err (negative errno).
struct io_uring_buf_ring *curing_setup_buf_ring(struct io_uring *ring, unsigned entries, int bgid, unsigned flags, int *err);

/// How `curing_queue_init_no_sqarray` set the ring up.
enum curing_no_sqarray_outcome {
    /// The kernel took IORING_SETUP_NO_SQARRAY.
    CURING_NO_SQARRAY_USED = 0,
    /// The kernel refused it (EINVAL, before 6.6); the ring was set up again without it.
    CURING_NO_SQARRAY_REFUSED = 1,
    /// The kernel took it but lacks IORING_FEAT_SINGLE_MMAP (liburing 2.3 sizes the SQ ring from the
    /// array's offset, right only when the CQ ring's size covers both); set up again without it.
    CURING_NO_SQARRAY_NO_SINGLE_MMAP = 2,
    /// Set-up failed (without the flag too, where EINVAL might have been another flag's refusal): the
    /// result says why.
    CURING_NO_SQARRAY_FAILED = 3,
};

/// io_uring_queue_init_params with IORING_SETUP_NO_SQARRAY added to p->flags: io_uring_setup, then
/// liburing's io_uring_queue_mmap (which maps and records the rings but writes nothing into them),
/// without 2.3's loop that fills the SQ index array, then ring->features. Where the kernel refuses the
/// flag it falls back to io_uring_queue_init_params without it. Returns 0 or a negated errno; *outcome
/// says which path ran (io_uring_setup calls: 1 for USED, 2 for REFUSED and NO_SINGLE_MMAP, 1 or 2 for
/// FAILED, which the engine counts as 2: it stops or retries with other flags then).
int curing_queue_init_no_sqarray(unsigned entries, struct io_uring *ring, struct io_uring_params *p, int *outcome);

/// The errno's symbolic name ("ECONNRESET"), or NULL when glibc has none (glibc 2.32+; declared here
/// because <string.h> only declares it under _GNU_SOURCE, which must not leak into the libc module).
extern const char *strerrorname_np(int err);
/// accept4 is declared by <sys/socket.h> only under _GNU_SOURCE, for the same reason.
extern int accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags);

static inline const char *curing_errno_name(int err) { return strerrorname_np(err); }

/// epoll_pwait2 (kernel 5.11, glibc 2.35): epoll_wait with a nanosecond timespec; <sys/epoll.h> declares
/// it only under _GNU_SOURCE.
extern int epoll_pwait2(int epfd, struct epoll_event *events, int maxevents, const struct timespec *timeout, const __sigset_t *sigmask);
/// prctl(PR_SET_TIMERSLACK, ns): variadic prctl is not callable from Swift.
static inline int curing_set_timer_slack(unsigned long nanoseconds) { return prctl(PR_SET_TIMERSLACK, nanoseconds, 0UL, 0UL, 0UL); }
/// The CPU's spin-wait hint (x86 `pause`), which Swift has no spelling for: a spin on the clock (the
/// engine's `spinNanoseconds`) then yields the core's pipeline to a sibling thread between reads.
static inline void curing_spin_hint(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif
