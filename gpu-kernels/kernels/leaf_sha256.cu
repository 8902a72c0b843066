// matproof: leaf hashes of the C tiles (DESIGN §3), one thread per tile.
//
// Tile (I, J) of C (m×n, i32, row-major) is the tm×tn block at rows I·tm.., columns J·tn..,
// row-major, little-endian, zero beyond m and n. Its leaf is
//   "matproof/v1/c" ‖ u64le(I) ‖ u64le(J) ‖ tile bytes
// and its leaf hash is the RFC 9162 H(0x00 ‖ leaf) with H = SHA-256, so the hashed message is
//   0x00 ‖ "matproof/v1/c" (13 bytes) ‖ u64le(I) ‖ u64le(J) ‖ 4·tm·tn bytes   (30 + 4·tm·tn bytes).
// Tiles are numbered row-major: index = I·col_blocks + J. out holds 32 bytes per tile.

typedef unsigned char u8;
typedef unsigned int u32;
typedef unsigned long long u64;

__constant__ u32 K256[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
    0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
    0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u};

__device__ __forceinline__ u32 rotr(u32 x, u32 r) { return __funnelshift_r(x, x, r); }

// "matproof/v1/c"
__device__ __forceinline__ u32 prefix_byte(u32 p) {
    const u64 lo = 0x666f6f727074616dull;  // "matproof", little-endian
    const u64 hi = 0x00000000632f31762full;  // "/v1/c"
    return (u32)(((p < 8 ? lo : hi) >> (8 * (p & 7))) & 0xffu);
}

struct Leaf {
    const int* c;
    u64 m, n, tm, tn, row_block, col_block;
    u64 len;     // message length in bytes: 30 + 4·tm·tn
    u64 padded;  // a multiple of 64
};

__device__ __forceinline__ u32 message_byte(const Leaf& L, u64 p) {
    if (p >= L.len) {
        if (p == L.len) return 0x80u;
        if (p + 8 >= L.padded) {
            const u64 bits = L.len * 8;
            const u64 b = p - (L.padded - 8);  // 0 = most significant
            return (u32)((bits >> (56 - 8 * b)) & 0xffu);
        }
        return 0;
    }
    if (p == 0) return 0;                                         // RFC 9162 leaf prefix
    if (p < 14) return prefix_byte((u32)(p - 1));                 // "matproof/v1/c"
    if (p < 22) return (u32)((L.row_block >> (8 * (p - 14))) & 0xffu);  // u64le(I)
    if (p < 30) return (u32)((L.col_block >> (8 * (p - 22))) & 0xffu);  // u64le(J)
    const u64 q = p - 30;
    const u64 e = q >> 2;
    const u64 row = L.row_block * L.tm + e / L.tn;
    const u64 col = L.col_block * L.tn + e % L.tn;
    const u32 v = (row < L.m && col < L.n) ? (u32)L.c[row * L.n + col] : 0u;
    return (v >> (8 * (u32)(q & 3))) & 0xffu;
}

extern "C" __global__ void __launch_bounds__(128)
c_leaf_hashes(const int* __restrict__ c, unsigned long long m, unsigned long long n,
              unsigned long long tm, unsigned long long tn, unsigned long long col_blocks,
              unsigned long long tile_count, u8* __restrict__ out) {
    const u64 index = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= tile_count) return;
    Leaf L;
    L.c = c;
    L.m = m;
    L.n = n;
    L.tm = tm;
    L.tn = tn;
    L.row_block = index / col_blocks;
    L.col_block = index % col_blocks;
    L.len = 30 + 4 * tm * tn;
    L.padded = ((L.len + 8) / 64 + 1) * 64;

    u32 h[8] = {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};
    for (u64 block = 0; block < L.padded; block += 64) {
        u32 w[16];
#pragma unroll
        for (int i = 0; i < 16; ++i) {
            const u64 p = block + 4 * i;
            w[i] = (message_byte(L, p) << 24) | (message_byte(L, p + 1) << 16) |
                   (message_byte(L, p + 2) << 8) | message_byte(L, p + 3);
        }
        u32 a = h[0], b = h[1], cc = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
#pragma unroll
        for (int i = 0; i < 64; ++i) {
            u32 wi;
            if (i < 16) {
                wi = w[i];
            } else {
                const u32 w15 = w[(i - 15) & 15], w2 = w[(i - 2) & 15];
                const u32 s0 = rotr(w15, 7) ^ rotr(w15, 18) ^ (w15 >> 3);
                const u32 s1 = rotr(w2, 17) ^ rotr(w2, 19) ^ (w2 >> 10);
                wi = w[i & 15] + s0 + w[(i - 7) & 15] + s1;
                w[i & 15] = wi;
            }
            const u32 S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
            const u32 ch = (e & f) ^ (~e & g);
            const u32 t1 = hh + S1 + ch + K256[i] + wi;
            const u32 S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
            const u32 maj = (a & b) ^ (a & cc) ^ (b & cc);
            const u32 t2 = S0 + maj;
            hh = g;
            g = f;
            f = e;
            e = d + t1;
            d = cc;
            cc = b;
            b = a;
            a = t1 + t2;
        }
        h[0] += a; h[1] += b; h[2] += cc; h[3] += d;
        h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
    }
    u8* o = out + index * 32;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        o[4 * i + 0] = (u8)(h[i] >> 24);
        o[4 * i + 1] = (u8)(h[i] >> 16);
        o[4 * i + 2] = (u8)(h[i] >> 8);
        o[4 * i + 3] = (u8)h[i];
    }
}
