// matproof: exact int8 GEMM on tensor cores (sm_80+), C (m×n, i32) = A (m×k, i8) · B (k×n, i8).
//
// Operands come packed by pack.cu: Ap (mp×kp) and Btp (np×kp), both K-contiguous and zero
// padded, mp and np multiples of 128, kp a multiple of 64. The block computes a 128×128 tile of
// C with 8 warps (2 along m × 4 along n, 64×32 each) using
// mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32, so every product and sum is exact integer
// arithmetic (wrapping i32, like the CPU kernels). K is walked in steps of 64 bytes with a
// two-stage cp.async pipeline through shared memory; shared rows are padded to 80 bytes so the
// fragment loads are free of bank conflicts. Stores check m and n: C is written unpadded.

typedef signed char i8;
typedef unsigned int u32;
typedef unsigned long long u64;

#define BM 128
#define BN 128
#define BK 64
#define SROW 80            // bytes per shared row (64 + 16 padding)
#define STAGE_BYTES (BM * SROW)

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
    u32 s = (u32)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all_but_one() { asm volatile("cp.async.wait_group 1;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::); }

__device__ __forceinline__ void mma_s8(int* c, u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// Copies the 128×64 slices of Ap and Btp at depth kt into shared stage buffers.
// 512 16-byte chunks per operand, 2 per thread.
__device__ __forceinline__ void load_stage(i8* as, i8* bs, const i8* __restrict__ ap,
                                           const i8* __restrict__ btp, u64 kp, u64 row0, u64 col0,
                                           u64 k0, u32 tid) {
#pragma unroll
    for (u32 q = 0; q < 2; ++q) {
        u32 chunk = tid + q * 256u;
        u32 r = chunk >> 2;
        u32 c16 = (chunk & 3u) * 16u;
        cp_async16(as + r * SROW + c16, ap + (row0 + r) * kp + k0 + c16);
        cp_async16(bs + r * SROW + c16, btp + (col0 + r) * kp + k0 + c16);
    }
}

extern "C" __global__ void __launch_bounds__(256, 1)
gemm_i8_mma(const i8* __restrict__ ap, const i8* __restrict__ btp, int* __restrict__ c,
            unsigned int m, unsigned int n, unsigned int kp) {
    __shared__ __align__(16) i8 smem[2 * 2 * STAGE_BYTES];  // [stage][A|B][128][80]
    const u32 tid = threadIdx.x;
    const u32 lane = tid & 31u;
    const u32 warp = tid >> 5;
    const u32 g = lane >> 2;       // groupID
    const u32 t = lane & 3u;       // threadID_in_group
    const u32 warp_m = warp >> 2;  // 0..1, 64 rows each
    const u32 warp_n = warp & 3u;  // 0..3, 32 columns each
    const u64 row0 = (u64)blockIdx.y * BM;
    const u64 col0 = (u64)blockIdx.x * BN;
    const u64 kp64 = kp;
    const u32 ktiles = kp / BK;

    int acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int q = 0; q < 4; ++q) acc[i][j][q] = 0;

    load_stage(smem, smem + STAGE_BYTES, ap, btp, kp64, row0, col0, 0, tid);
    cp_async_commit();

    for (u32 kt = 0; kt < ktiles; ++kt) {
        const u32 stage = kt & 1u;
        if (kt + 1 < ktiles) {
            i8* next = smem + (stage ^ 1u) * 2 * STAGE_BYTES;
            load_stage(next, next + STAGE_BYTES, ap, btp, kp64, row0, col0, (u64)(kt + 1) * BK, tid);
            cp_async_commit();
            cp_async_wait_all_but_one();
        } else {
            cp_async_wait_all();
        }
        __syncthreads();

        const i8* as = smem + stage * 2 * STAGE_BYTES;
        const i8* bs = as + STAGE_BYTES;
#pragma unroll
        for (u32 kk = 0; kk < BK; kk += 32) {
            u32 bf[4][2];
#pragma unroll
            for (u32 ni = 0; ni < 4; ++ni) {
                const i8* p = bs + (warp_n * 32 + ni * 8 + g) * SROW + kk + t * 4;
                bf[ni][0] = *reinterpret_cast<const u32*>(p);
                bf[ni][1] = *reinterpret_cast<const u32*>(p + 16);
            }
#pragma unroll
            for (u32 mi = 0; mi < 4; ++mi) {
                const i8* p = as + (warp_m * 64 + mi * 16 + g) * SROW + kk + t * 4;
                const u32 a0 = *reinterpret_cast<const u32*>(p);
                const u32 a1 = *reinterpret_cast<const u32*>(p + 8 * SROW);
                const u32 a2 = *reinterpret_cast<const u32*>(p + 16);
                const u32 a3 = *reinterpret_cast<const u32*>(p + 8 * SROW + 16);
#pragma unroll
                for (u32 ni = 0; ni < 4; ++ni) mma_s8(acc[mi][ni], a0, a1, a2, a3, bf[ni][0], bf[ni][1]);
            }
        }
        __syncthreads();
    }

#pragma unroll
    for (u32 mi = 0; mi < 4; ++mi) {
#pragma unroll
        for (u32 ni = 0; ni < 4; ++ni) {
            const u64 r = row0 + warp_m * 64 + mi * 16 + g;
            const u64 col = col0 + warp_n * 32 + ni * 8 + t * 2;
#pragma unroll
            for (u32 h = 0; h < 2; ++h) {
                const u64 rr = r + h * 8;
                if (rr < m) {
                    if (col < n) c[rr * n + col] = acc[mi][ni][2 * h];
                    if (col + 1 < n) c[rr * n + col + 1] = acc[mi][ni][2 * h + 1];
                }
            }
        }
    }
}
