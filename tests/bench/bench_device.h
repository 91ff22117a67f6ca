/* bench_device.h: what the device benchmarks (gpu_bench.c, tests/gpu/quant_bench.c) share: the
 * device-to-device copy bandwidth, the ceiling decode is measured against. Needs bench_util.h. */
#ifndef EMU2_BENCH_DEVICE_H
#define EMU2_BENCH_DEVICE_H

#include "ops/ops.h"

/* Best of 5 timed copies of n floats from src to dst, both in be's memory (upload with a device
 * source is a device copy; a first untimed copy warms up), in bytes read + written per second; 0
 * when either is NULL or a copy fails. Frees src and dst. */
static inline double bench_copy_bandwidth(emu2_backend *be, float *dst, float *src, size_t n, emu2_error *err)
{
    double best = 0;
    for (int r = 0; src && dst && r < 6; r++) {
        be->ops->sync(be, err);
        double t0 = bench_now();
        if (be->ops->upload(be, dst, src, n, err) != EMU2_OK || be->ops->sync(be, err) != EMU2_OK)
            break;
        double bw = 2.0 * (double)n * sizeof(float) / (bench_now() - t0);
        if (r > 0 && bw > best)
            best = bw;
    }
    if (src)
        be->ops->free(be, src);
    if (dst)
        be->ops->free(be, dst);
    return best;
}

#endif
