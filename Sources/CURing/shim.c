#include "CURing.h"
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
