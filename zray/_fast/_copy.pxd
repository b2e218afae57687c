# The one "copy bytes fast" routine, shared (inlined) by buffers.pyx and objformat.pyx so both
# write into the arena the same way without a runtime dependency between the two modules, plus
# the buffer-acquisition helpers both use so their errors match the pure-Python twins.

from cpython.buffer cimport PyBUF_C_CONTIGUOUS, PyBUF_WRITABLE, PyObject_GetBuffer
from cpython.long cimport PyLong_AsLongLongAndOverflow

cdef extern from *:
    """
    #include <pthread.h>
    #include <string.h>

    /* Measured on the 2-core dev VM (AMD EPYC, 32 MiB L3), warm shm destination, median GB/s:
     *
     *   size       1 thread  2 threads
     *   32 MiB        9.2      12.6
     *   64 MiB        9.2      12.8
     *   128 MiB       9.6      13.3
     *   192 MiB      16.0      13.5
     *   256 MiB      16.3      15.1
     *   512 MiB      16.1      21.1
     *   1 GiB        16.1      20.9
     *
     * The dip at 192-384 MiB is glibc switching memcpy to non-temporal stores at 192 MiB per
     * call (it derives that from the 256 MiB "shared cache" this VM's CPUID claims): a single
     * call crosses that threshold before the halves do.  Splitting wins everywhere else, so it
     * stays; the band is not special-cased because the threshold is a property of the VM.
     * Into never-touched shm pages the split also takes page faults in parallel: 256 MiB cold
     * 2.2 GB/s vs 1.1 GB/s (perf/bench_fast.py populate). */
    #define ZRAY_SPLIT_COPY_MIN ((size_t)32 << 20)

    typedef struct { char *dest; const char *src; size_t n; } zray_copy_job;

    static void *zray_copy_worker(void *arg) {
        zray_copy_job *job = (zray_copy_job *)arg;
        memcpy(job->dest, job->src, job->n);
        return NULL;
    }

    static void zray_copy_bytes(char *dest, const char *src, size_t n) {
        pthread_t helper;
        zray_copy_job job;
        size_t half;
        if (n < ZRAY_SPLIT_COPY_MIN) {
            memcpy(dest, src, n);
            return;
        }
        /* Split at a 4 KiB multiple: with a page-aligned dest the threads never fault the
         * same page or write the same cache line. */
        half = (n / 2) & ~(size_t)4095;
        job.dest = dest + half;
        job.src = src + half;
        job.n = n - half;
        if (pthread_create(&helper, NULL, zray_copy_worker, &job) != 0) {
            memcpy(dest, src, n);
            return;
        }
        memcpy(dest, src, half);
        pthread_join(helper, NULL);
    }
    """
    void zray_copy_bytes(char *dest, const char *src, size_t n) nogil


# Dropping the GIL is cheap, but taking it back can mean waiting out another thread's turn (up
# to the 5 ms switch interval); only copies that themselves take microseconds are worth that.
cdef enum:
    NOGIL_COPY_MIN = 64 * 1024


cdef inline void copy_bytes(char *dest, const char *src, size_t n) noexcept:
    if n >= NOGIL_COPY_MIN:
        with nogil:
            zray_copy_bytes(dest, src, n)
    else:
        zray_copy_bytes(dest, src, n)


cdef inline long long non_negative(obj, str what) except -1:
    cdef int overflow = 0
    cdef long long value = PyLong_AsLongLongAndOverflow(obj, &overflow)
    if overflow != 0 or value < 0:
        raise ValueError(f"{what} must be a non-negative int64, got {obj}")
    return value


cdef inline int get_writable(obj, Py_buffer *view) except -1:
    try:
        PyObject_GetBuffer(obj, view, PyBUF_WRITABLE)
    except (BufferError, ValueError) as exc:
        raise TypeError(f"dest must be a writable contiguous buffer ({exc})") from None
    return 0


cdef inline int get_contiguous(obj, Py_buffer *view, str what) except -1:
    try:
        PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS)
    except (BufferError, ValueError) as exc:
        raise ValueError(f"{what} must be a C-contiguous buffer ({exc})") from None
    return 0
