// matproof: exact int8 GEMM with dp4a (sm_61+), the fallback for chips without int8 tensor
// cores. C (m×n, i32) = A (m×k, i8) · B (k×n, i8), wrapping i32 like every other path.
//
// Operands come packed by pack.cu: Ap (mp×kp) and Btp (np×kp), K-contiguous and zero padded,
// mp and np multiples of 64, kp a multiple of 32. A block of 256 threads computes a 64×64 tile
// of C, each thread 4×4 entries (rows ty + 16·i, columns tx + 16·j). Shared rows hold 32 bytes
// (8 words) padded to 9 words against bank conflicts.

typedef signed char i8;
typedef unsigned long long u64;

#define TILE 64
#define KB 32
#define KW 8     // words per K slice
#define SW 9     // padded words per shared row

extern "C" __global__ void __launch_bounds__(256, 2)
gemm_i8_dp4a(const i8* __restrict__ ap, const i8* __restrict__ btp, int* __restrict__ c,
             unsigned int m, unsigned int n, unsigned int kp) {
    __shared__ int as[TILE * SW];
    __shared__ int bs[TILE * SW];
    const unsigned int tid = threadIdx.x;
    const unsigned int tx = tid & 15u;
    const unsigned int ty = tid >> 4;
    const u64 row0 = (u64)blockIdx.y * TILE;
    const u64 col0 = (u64)blockIdx.x * TILE;
    const int* a32 = reinterpret_cast<const int*>(ap);
    const int* b32 = reinterpret_cast<const int*>(btp);
    const u64 kpw = kp / 4;  // words per packed row

    int acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = 0;

    for (unsigned int k0 = 0; k0 < kp; k0 += KB) {
        const u64 w0 = k0 / 4;
        // 64 rows × 8 words = 512 words per operand, 2 per thread.
#pragma unroll
        for (unsigned int q = 0; q < 2; ++q) {
            const unsigned int e = tid + q * 256u;
            const unsigned int r = e >> 3;
            const unsigned int w = e & 7u;
            as[r * SW + w] = a32[(row0 + r) * kpw + w0 + w];
            bs[r * SW + w] = b32[(col0 + r) * kpw + w0 + w];
        }
        __syncthreads();
#pragma unroll
        for (unsigned int w = 0; w < KW; ++w) {
            int av[4], bv[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) av[i] = as[(ty + 16 * i) * SW + w];
#pragma unroll
            for (int j = 0; j < 4; ++j) bv[j] = bs[(tx + 16 * j) * SW + w];
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] = __dp4a(av[i], bv[j], acc[i][j]);
        }
        __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const u64 r = row0 + ty + 16 * i;
        if (r >= m) continue;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const u64 col = col0 + tx + 16 * j;
            if (col < n) c[r * n + col] = acc[i][j];
        }
    }
}
