// matproof: Freivalds projections over F_q, q = 2^61 − 1 (DESIGN §5.1).
//
// out[round][row] = Σ_j M[row][j] · r_round[j] mod q for up to 4 rounds per launch, with the
// signed entries of M mapped to F_q as v mod q and every r entry < q, exactly as
// protocol::freivalds::project_{i8,i32}: each lane accumulates |v|·r (v ≥ 0) or |v|·(q − r)
// (v < 0) into one 128-bit sum per round (|v| ≤ 2^31, both factors ≤ 2^61, at most 2^17 / 32
// terms per lane, so sums stay below 2^104), reduces it once, and the warp adds its 32
// residues mod q.
// One warp per row; block 256 threads (8 rows). vectors: [rounds_total][cols];
// out: [rounds_total][rows]; this launch handles rounds round0 .. round0 + count − 1.

typedef signed char i8;
typedef unsigned long long u64;

#define Q ((1ull << 61) - 1)

__device__ __forceinline__ u64 reduce128(u64 lo, u64 hi) {
    u64 s = (lo & Q) + ((lo >> 61) | ((hi << 3) & Q)) + (hi >> 58);
    s = (s & Q) + (s >> 61);
    return s >= Q ? s - Q : s;
}
__device__ __forceinline__ u64 add_mod(u64 a, u64 b) {
    const u64 s = a + b;
    return s >= Q ? s - Q : s;
}
__device__ __forceinline__ void add128(u64& lo, u64& hi, u64 x_lo, u64 x_hi) {
    lo += x_lo;
    hi += x_hi + (lo < x_lo ? 1ull : 0ull);
}

template <typename T>
__device__ __forceinline__ void project(const T* __restrict__ mat, u64 rows, u64 cols,
                                        const u64* __restrict__ vectors, unsigned int round0,
                                        unsigned int count, u64* __restrict__ out) {
    const u64 row = ((u64)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const unsigned int lane = threadIdx.x & 31u;
    if (row >= rows) return;  // the whole warp leaves together
    u64 acc_lo[4] = {0, 0, 0, 0}, acc_hi[4] = {0, 0, 0, 0};
    const T* m_row = mat + row * cols;
    for (u64 j = lane; j < cols; j += 32) {
        const long long v = (long long)m_row[j];
        const u64 mag = (u64)(v < 0 ? -v : v);
#pragma unroll
        for (unsigned int q = 0; q < 4; ++q) {
            if (q < count) {
                // v·r ≡ |v|·(q − r) for v < 0 (and q − 0 = q ≡ 0), so one non-negative sum.
                const u64 r = vectors[(u64)(round0 + q) * cols + j];
                const u64 rr = v < 0 ? Q - r : r;
                add128(acc_lo[q], acc_hi[q], mag * rr, __umul64hi(mag, rr));
            }
        }
    }
#pragma unroll
    for (unsigned int q = 0; q < 4; ++q) {
        if (q < count) {
            u64 s = reduce128(acc_lo[q], acc_hi[q]);
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) s = add_mod(s, __shfl_down_sync(0xffffffffu, s, off));
            if (lane == 0) out[(u64)(round0 + q) * rows + row] = s;
        }
    }
}

extern "C" __global__ void __launch_bounds__(256)
project_i32(const int* __restrict__ mat, unsigned long long rows, unsigned long long cols,
            const u64* __restrict__ vectors, unsigned int round0, unsigned int count,
            u64* __restrict__ out) {
    project<int>(mat, rows, cols, vectors, round0, count, out);
}

extern "C" __global__ void __launch_bounds__(256)
project_i8(const i8* __restrict__ mat, unsigned long long rows, unsigned long long cols,
           const u64* __restrict__ vectors, unsigned int round0, unsigned int count,
           u64* __restrict__ out) {
    project<i8>(mat, rows, cols, vectors, round0, count, out);
}
