#include "CURing.h"
#include <sys/syscall.h>
#include <unistd.h>

unsigned curing_flush_sq(struct io_uring *ring) {
    struct io_uring_sq *sq = &ring->sq;
    if (sq->sqe_head != sq->sqe_tail) {
        sq->sqe_head = sq->sqe_tail;
        io_uring_smp_store_release(sq->ktail, sq->sqe_tail);
    }
    return sq->sqe_tail - IO_URING_READ_ONCE(*sq->khead);
}

struct io_uring_buf_ring *curing_setup_buf_ring(struct io_uring *ring, unsigned entries, int bgid, unsigned flags, int *err) {
    size_t bytes = (size_t)entries * sizeof(struct io_uring_buf);
    void *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) { *err = -errno; return NULL; }
    struct io_uring_buf_reg reg = { .ring_addr = (uint64_t)(uintptr_t)mem, .ring_entries = entries, .bgid = (uint16_t)bgid, .pad = (uint16_t)flags };
    int ret = io_uring_register_buf_ring(ring, &reg, 0);
    if (ret < 0) { munmap(mem, bytes); *err = ret; return NULL; }
    io_uring_buf_ring_init((struct io_uring_buf_ring *)mem);
    return (struct io_uring_buf_ring *)mem;
}

int curing_probe_ring_setsockopt(struct io_uring *ring) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    static const struct linger abort_on_close = { .l_onoff = 1, .l_linger = 0 };
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (!sqe) { close(fd); return -EBUSY; }
    curing_prep_setsockopt(sqe, fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
    io_uring_sqe_set_data64(sqe, 0);
    int ret = io_uring_submit_and_wait(ring, 1);
    if (ret >= 0) {
        struct io_uring_cqe *cqe = NULL;
        ret = io_uring_peek_cqe(ring, &cqe);
        if (ret == 0 && cqe) {
            ret = cqe->res;
            io_uring_cqe_seen(ring, cqe);
        }
    }
    close(fd);
    return ret;
}

int curing_queue_init_no_sqarray(unsigned entries, struct io_uring *ring, struct io_uring_params *p, int *outcome) {
    struct io_uring_params asked = *p;
    p->flags |= IORING_SETUP_NO_SQARRAY;
    int fd = (int)syscall(__NR_io_uring_setup, entries, p);
    if (fd < 0) {
        int err = -errno;
        *p = asked;
        if (err != -EINVAL) { *outcome = CURING_NO_SQARRAY_FAILED; return err; }
        *outcome = CURING_NO_SQARRAY_REFUSED;
    } else if (!(p->features & IORING_FEAT_SINGLE_MMAP)) {
        close(fd);
        *p = asked;
        *outcome = CURING_NO_SQARRAY_NO_SINGLE_MMAP;
    } else {
        // Maps the rings and records their pointers and sizes; the only write into the shared memory
        // in 2.3's io_uring_queue_init_params is the array loop after it, which this skips.
        int ret = io_uring_queue_mmap(fd, p, ring);
        if (ret < 0) { close(fd); *outcome = CURING_NO_SQARRAY_FAILED; return ret; }
        ring->features = p->features;
        *outcome = CURING_NO_SQARRAY_USED;
        return 0;
    }
    int ret = io_uring_queue_init_params(entries, ring, p);
    if (ret < 0) *outcome = CURING_NO_SQARRAY_FAILED;
    return ret;
}
