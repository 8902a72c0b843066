// matproof: leaf hashes of the C tiles (DESIGN §3).
//
// Tile (I, J) of C (m×n, i32, row-major) is the tm×tn block at rows I·tm.., columns J·tn..,
// row-major, little-endian, zero beyond m and n. Its leaf is
//   "matproof/v1/c" ‖ u64le(I) ‖ u64le(J) ‖ tile bytes
// and its leaf hash is the RFC 9162 H(0x00 ‖ leaf) with H = SHA-256, so the hashed message is
//   0x00 ‖ "matproof/v1/c" (13 bytes) ‖ u64le(I) ‖ u64le(J) ‖ 4·tm·tn bytes   (30 + 4·tm·tn bytes).
// Tiles are numbered row-major: index = I·col_blocks + J. out holds 32 bytes per tile.
//
// Two kernels, same bytes out:
// - c_leaf_hashes: one thread per tile, for many small tiles (a warp hashes 32 tiles at once);
// - c_leaf_hashes_warp: one warp per tile, for few large tiles (256×256 tiles of an 8192² C
//   are 1024 tiles: one thread each would keep 8 SMs busy). The 32 lanes build the next 32
//   message words (two SHA-256 blocks) from 32 consecutive tile elements, coalesced, and every
//   lane runs the (inherently sequential) compression on them, so the hash state needs no
//   broadcast.
//
// The message as big-endian 32-bit words, without any per-byte index arithmetic: the 30-byte
// header puts tile element e's little-endian bytes at message bytes 30+4e .. 33+4e, so for
// w ≥ 7 word w is the upper two bytes of V(w−8) then the lower two of V(w−7), where
//   V(−1) = J >> 32 (J's last two bytes are its upper two), V(e) = element e for e < T = tm·tn,
//   V(T) = 0x80 (the padding marker at byte 30+4T is V(T)'s low byte), V(e) = 0 beyond;
// words 0..6 are header only, and the last two words of the padded message are its bit length.

typedef unsigned char u8;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;

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

// Message byte p < 30 (the header).
__device__ __forceinline__ u32 header_byte(u32 p, u64 I, u64 J) {
    if (p == 0) return 0;                                    // RFC 9162 leaf prefix
    if (p < 14) return prefix_byte(p - 1);                   // "matproof/v1/c"
    if (p < 22) return (u32)((I >> (8 * (p - 14))) & 0xffu);  // u64le(I)
    return (u32)((J >> (8 * (p - 22))) & 0xffu);              // u64le(J), bytes 0..5 here
}

// Message word w < 7 (header bytes 4w .. 4w+3), once per tile.
__device__ __forceinline__ u32 header_word(u32 w, u64 I, u64 J) {
    const u32 p = 4 * w;
    return (header_byte(p, I, J) << 24) | (header_byte(p + 1, I, J) << 16) |
           (header_byte(p + 2, I, J) << 8) | header_byte(p + 3, I, J);
}

// Bytes 2, 3 of `upper` then bytes 0, 1 of `lower`, most significant first.
__device__ __forceinline__ u32 straddle_word(u32 upper, u32 lower) { return __byte_perm(upper, lower, 0x2345); }

struct Tile {
    const int* c;
    u64 m, n, tm, tn;
    u64 I, J;
    u64 row0, col0;   // C position of the tile's element 0
    u64 elements;     // T = tm·tn
    u64 words;        // padded message length in words (a multiple of 16)
    u64 bits;         // message length in bits
};

__device__ __forceinline__ Tile make_tile(const int* c, u64 m, u64 n, u64 tm, u64 tn, u64 col_blocks,
                                          u64 index) {
    Tile t;
    t.c = c;
    t.m = m;
    t.n = n;
    t.tm = tm;
    t.tn = tn;
    t.I = index / col_blocks;  // once per tile
    t.J = index - t.I * col_blocks;
    t.row0 = t.I * tm;
    t.col0 = t.J * tn;
    t.elements = tm * tn;
    const u64 len = 30 + 4 * t.elements;
    t.words = ((len + 8) / 64 + 1) * 16;
    t.bits = len * 8;
    return t;
}

// V(e) for e ≥ 0 at tile position (r, col) (e = r·tn + col).
__device__ __forceinline__ u32 value_at(const Tile& t, u64 e, u64 r, u64 col) {
    if (e < t.elements) {
        const u64 row = t.row0 + r, cc = t.col0 + col;
        return (row < t.m && cc < t.n) ? (u32)__ldg(t.c + row * t.n + cc) : 0u;
    }
    return e == t.elements ? 0x80u : 0u;
}

// The last two words of the padded message hold its bit length, big-endian.
__device__ __forceinline__ u32 with_length(const Tile& t, u64 w, u32 word) {
    if (w + 2 == t.words) return (u32)(t.bits >> 32);
    if (w + 1 == t.words) return (u32)t.bits;
    return word;
}

// One SHA-256 compression of the 16 words in w (overwritten by the schedule).
__device__ __forceinline__ void compress(u32* h, u32* w) {
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

__device__ __forceinline__ void init_state(u32* h) {
    h[0] = 0x6a09e667u; h[1] = 0xbb67ae85u; h[2] = 0x3c6ef372u; h[3] = 0xa54ff53au;
    h[4] = 0x510e527fu; h[5] = 0x9b05688cu; h[6] = 0x1f83d9abu; h[7] = 0x5be0cd19u;
}

__device__ __forceinline__ void store_digest(const u32* h, u8* o) {
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        o[4 * i + 0] = (u8)(h[i] >> 24);
        o[4 * i + 1] = (u8)(h[i] >> 16);
        o[4 * i + 2] = (u8)(h[i] >> 8);
        o[4 * i + 3] = (u8)h[i];
    }
}

// One thread per tile: walks the message word by word, carrying V(w−8) from the previous word
// and the tile position of the next element (no division).
extern "C" __global__ void __launch_bounds__(128)
c_leaf_hashes(const int* __restrict__ c, unsigned long long m, unsigned long long n,
              unsigned long long tm, unsigned long long tn, unsigned long long col_blocks,
              unsigned long long tile_count, u8* __restrict__ out) {
    const u64 index = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= tile_count) return;
    const Tile t = make_tile(c, m, n, tm, tn, col_blocks, index);
    u32 h[8];
    init_state(h);
    u32 upper = (u32)(t.J >> 32);  // V(−1)
    u64 e = 0, r = 0, col = 0;     // the next element and its tile position
    for (u64 w0 = 0; w0 < t.words; w0 += 16) {
        u32 w[16];
#pragma unroll
        for (int i = 0; i < 16; ++i) {
            const u64 wi = w0 + i;
            u32 word;
            if (wi < 7) {
                word = header_word((u32)wi, t.I, t.J);
            } else {
                const u32 lower = value_at(t, e, r, col);
                word = straddle_word(upper, lower);
                upper = lower;
                ++e;
                if (++col == t.tn) {
                    col = 0;
                    ++r;
                }
            }
            w[i] = with_length(t, wi, word);
        }
        compress(h, w);
    }
    store_digest(h, out + index * 32);
}

// One warp per tile, four tiles per block of 128 threads. Lane L builds word 32·s + L of step s
// (lanes 0..15 one block, 16..31 the next); the element e = w − 8 whose upper bytes start it
// moves 32 elements a step, its tile position (r, col) following without division.
extern "C" __global__ void __launch_bounds__(128)
c_leaf_hashes_warp(const int* __restrict__ c, unsigned long long m, unsigned long long n,
                   unsigned long long tm, unsigned long long tn, unsigned long long col_blocks,
                   unsigned long long tile_count, u8* __restrict__ out) {
    const u64 index = (u64)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (index >= tile_count) return;  // the whole warp: the shuffles below see all 32 lanes
    const u32 lane = threadIdx.x & 31u;
    const Tile t = make_tile(c, m, n, tm, tn, col_blocks, index);
    const i64 tn_signed = (i64)tn;
    i64 e = (i64)lane - 8;  // negative for the header words
    i64 col = e;
    u64 r = 0;
    while (col >= tn_signed) {  // lanes 8..31 start at elements 0..23
        col -= tn_signed;
        ++r;
    }
    u32 h[8];
    init_state(h);
    const u64 blocks = t.words / 16;
    for (u64 block = 0; block < blocks; block += 2) {
        const u64 wl = block * 16 + lane;
        u32 word = 0;
        if (wl < 7) {
            word = header_word((u32)wl, t.I, t.J);
        } else if (wl < t.words) {
            const u32 upper = e < 0 ? (u32)(t.J >> 32) : value_at(t, (u64)e, r, (u64)col);
            const bool wraps = col + 1 >= tn_signed;  // e + 1 starts the next tile row
            const u32 lower = value_at(t, (u64)(e + 1), wraps ? r + 1 : r, wraps ? 0 : (u64)(col + 1));
            word = with_length(t, wl, straddle_word(upper, lower));
        }
        u32 w[16];
#pragma unroll
        for (int i = 0; i < 16; ++i) w[i] = __shfl_sync(0xffffffffu, word, i);
        compress(h, w);
        if (block + 1 < blocks) {
#pragma unroll
            for (int i = 0; i < 16; ++i) w[i] = __shfl_sync(0xffffffffu, word, 16 + i);
            compress(h, w);
        }
        e += 32;
        col += 32;
        while (col >= tn_signed) {
            col -= tn_signed;
            ++r;
        }
    }
    if (lane == 0) store_digest(h, out + index * 32);
}
