// matproof: operand packing for the int8 GEMM kernels (sm_61+).
//
// Both GEMM kernels read K-contiguous, zero-padded operands so that their inner loops need no
// edge checks and every shared-memory load is an aligned 16-byte vector:
//   Ap  (mp × kp): Ap[i][t] = A[i][t] for i < m, t < k, else 0            (A is m×k row-major)
//   Btp (np × kp): Btp[j][t] = B[t][j] for j < n, t < k, else 0           (B is k×n row-major)
// mp, np, kp are multiples of the GEMM block tile, chosen by the host.

typedef signed char i8;
typedef unsigned long long u64;

extern "C" __global__ void pack_rows_i8(const i8* __restrict__ a, i8* __restrict__ ap,
                                        unsigned int m, unsigned int k,
                                        unsigned int mp, unsigned int kp) {
    // One thread per 4 output bytes along a row: coalesced writes, mostly coalesced reads.
    // Rows are strided over gridDim.y (mp may exceed the 65535 limit of a grid's y).
    unsigned int t4 = (blockIdx.x * blockDim.x + threadIdx.x) * 4u;
    if (t4 >= kp) return;
    for (unsigned int i = blockIdx.y; i < mp; i += gridDim.y) {
        i8 v[4];
#pragma unroll
        for (int q = 0; q < 4; ++q) {
            unsigned int t = t4 + q;
            v[q] = (i < m && t < k) ? a[(u64)i * k + t] : (i8)0;
        }
        char4 out;
        out.x = v[0]; out.y = v[1]; out.z = v[2]; out.w = v[3];
        *reinterpret_cast<char4*>(ap + (u64)i * kp + t4) = out;
    }
}

// 32×32 tiles through shared memory: reads of B rows and writes of Btp rows are both coalesced.
// Block (32, 8); grid (kp/32, np/32).
extern "C" __global__ void pack_transpose_i8(const i8* __restrict__ b, i8* __restrict__ btp,
                                             unsigned int k, unsigned int n,
                                             unsigned int np, unsigned int kp) {
    __shared__ i8 tile[32][33];
    unsigned int t0 = blockIdx.x * 32u;  // along k
    unsigned int j0 = blockIdx.y * 32u;  // along n
    for (unsigned int r = threadIdx.y; r < 32u; r += 8u) {
        unsigned int t = t0 + r;
        unsigned int j = j0 + threadIdx.x;
        tile[r][threadIdx.x] = (t < k && j < n) ? b[(u64)t * n + j] : (i8)0;
    }
    __syncthreads();
    for (unsigned int r = threadIdx.y; r < 32u; r += 8u) {
        unsigned int j = j0 + r;
        unsigned int t = t0 + threadIdx.x;
        if (j < np && t < kp) btp[(u64)j * kp + t] = tile[threadIdx.x][r];
    }
}
