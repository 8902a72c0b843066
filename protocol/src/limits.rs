//! Named limits. Every input is checked against these before any allocation sized by it.
//!
//! They are part of the protocol: a verifier rejects a job or message that exceeds them, so
//! changing one is a protocol change.

/// Largest `m`, `k` or `n` of a job. Also the bound the exact Freivalds arithmetic relies on
/// (DESIGN §5.1: `i8 × 2^31` summed over `2^17` terms stays below `2^55`).
pub const MAX_DIM: usize = 1 << 17;

/// Largest inner dimension `k` (and circuit `kc`): every `i8·i8` product fits in `i16` and a
/// sum of `k` of them fits in `i32` (DESIGN §1).
pub const MAX_K: usize = 1 << 17;

/// Largest number of elements in one matrix (4 Gi elements: 16 GiB as `i32`).
pub const MAX_MATRIX_ELEMENTS: usize = 1 << 32;

/// Largest tile side `tm` or `tn` of a circuit shape.
pub const MAX_TILE_SIDE: usize = 1024;

/// Largest number of C tiles (Merkle leaves) in one job.
pub const MAX_TILES: usize = 1 << 24;

/// Largest number of sampled tiles per job.
pub const MAX_SAMPLES: usize = 4096;

/// Largest number of Freivalds rounds per job.
pub const MAX_FREIVALDS_ROUNDS: usize = 16;

/// Largest `.npy` header, in bytes (numpy itself writes far smaller ones).
pub const MAX_NPY_HEADER_BYTES: usize = 64 * 1024;

/// Largest size of a `.npy` file the CLI reads, in bytes (the largest `i32` matrix plus header).
pub const MAX_NPY_FILE_BYTES: u64 = (MAX_MATRIX_ELEMENTS as u64) * 4 + MAX_NPY_HEADER_BYTES as u64;

/// Largest single protocol message (gRPC frame, receipt file), in bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// HTTP/2 flow-control window of one gRPC stream, in bytes, on every server and client of
/// ours. HTTP/2's default (64 KiB) caps a stream at one window per round trip: `C` moved at
/// 15–25 MB/s on loopback with it. A window of two 4 MiB chunks keeps the sender busy; what
/// a peer may buffer per stream stays bounded by it.
pub const STREAM_WINDOW_BYTES: u32 = 8 * 1024 * 1024;

/// HTTP/2 flow-control window of one connection (all its streams), in bytes.
pub const CONNECTION_WINDOW_BYTES: u32 = 32 * 1024 * 1024;

/// Largest HTTP/2 frame a server or client of ours accepts, in bytes (it advertises it in
/// SETTINGS_MAX_FRAME_SIZE; the default is 16 KiB). A 4 MiB chunk of `C` in 16 KiB frames is
/// 256 frame headers to write, parse and account for per chunk.
pub const MAX_FRAME_BYTES: u32 = 1024 * 1024;

/// Largest Merkle inclusion path accepted (a tree of at most `2^64` leaves).
pub const MAX_MERKLE_PATH_LEN: usize = 64;

/// Largest variable-length byte string inside a canonical encoding.
pub const MAX_CANONICAL_BYTES: usize = 4096;
