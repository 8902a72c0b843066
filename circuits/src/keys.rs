//! Groth16 key files.
//!
//! Layout (all integers little-endian):
//! ```text
//! 16 bytes  magic "MATPROOF-KEY-V1\n"
//! u8        kind: 1 proving key, 2 verifying key
//! u64 ×3    tm, tn, kc
//! u8        origin: 1 single-party development setup, 2 multi-party ceremony
//! u32 + ..  origin note (UTF-8, ≤ 256 bytes: the ceremony's name and transcript hash)
//! 32 bytes  the verifying key's identity hash (`vk_hash`: binds shape, origin and key)
//! u64 + ..  the key, ark-serialize compressed
//! ```
//! Loading validates everything: magic, kind, shape limits, origin, every curve point (on
//! the curve, in the subgroup), the verifying-key hash, `γ ≠ δ` and the input count.

use std::path::Path;

use ark_bn254::Bn254;
use ark_ec::AffineRepr;
use ark_groth16::{ProvingKey, VerifyingKey};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
use matproof_protocol::ids::VkHash;
use matproof_protocol::limits::{MAX_K, MAX_TILE_SIDE};
use matproof_protocol::tiling::CircuitShape;
use sha2::{Digest, Sha256};

use crate::tile::PUBLIC_INPUTS;

/// File magic.
pub const KEY_MAGIC: &[u8; 16] = b"MATPROOF-KEY-V1\n";
/// Largest origin note.
pub const MAX_ORIGIN_NOTE_BYTES: usize = 256;
/// Largest key body accepted (a proving key for the largest practical tile).
pub const MAX_KEY_BODY_BYTES: u64 = 8 << 30;

/// Who made a key pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// `circuit_specific_setup` run by one party: fine for development, not for production
    /// (that party could forge proofs).
    DevelopmentSingleParty,
    /// A multi-party ceremony; the note names it and its transcript.
    Ceremony {
        /// Ceremony name and transcript reference.
        note: String,
    },
}

impl KeyOrigin {
    fn encode(&self) -> (u8, &str) {
        match self {
            KeyOrigin::DevelopmentSingleParty => (1, ""),
            KeyOrigin::Ceremony { note } => (2, note.as_str()),
        }
    }

    /// Human description.
    pub fn describe(&self) -> String {
        match self {
            KeyOrigin::DevelopmentSingleParty => "single-party development setup (not for production)".into(),
            KeyOrigin::Ceremony { note } => format!("multi-party ceremony: {note}"),
        }
    }
}

/// A key-file problem.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// I/O failure.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Not a matproof key file.
    #[error("not a matproof key file (bad magic)")]
    BadMagic,
    /// Proving key where a verifying key was expected, or the reverse.
    #[error("wrong key kind {found}: expected {expected}")]
    WrongKind {
        /// Kind byte found.
        found: u8,
        /// Kind byte expected.
        expected: u8,
    },
    /// A header field is malformed.
    #[error("malformed key header: {reason}")]
    Header {
        /// What.
        reason: String,
    },
    /// The key bytes do not decode to valid points.
    #[error("key body invalid: {reason}")]
    Body {
        /// What.
        reason: String,
    },
    /// The verifying key does not hash to the header's hash.
    #[error("verifying-key hash mismatch: header says {header}, key hashes to {actual}")]
    HashMismatch {
        /// The header's hash.
        header: VkHash,
        /// The computed hash.
        actual: VkHash,
    },
    /// The key is structurally unusable (`γ = δ`, wrong input count, identity points).
    #[error("degenerate verifying key: {reason}")]
    Degenerate {
        /// What.
        reason: &'static str,
    },
}

const KIND_PROVING: u8 = 1;
const KIND_VERIFYING: u8 = 2;

/// A verifying key for one circuit shape.
#[derive(Debug, Clone, PartialEq)]
pub struct TileVerifyingKey {
    /// Circuit shape.
    pub shape: CircuitShape,
    /// Who made it.
    pub origin: KeyOrigin,
    /// The Groth16 verifying key.
    pub vk: VerifyingKey<Bn254>,
}

/// A proving key for one circuit shape.
#[derive(Clone)]
pub struct TileProvingKey {
    /// Circuit shape.
    pub shape: CircuitShape,
    /// Who made it.
    pub origin: KeyOrigin,
    /// The Groth16 proving key (contains the verifying key).
    pub pk: ProvingKey<Bn254>,
}

impl std::fmt::Debug for TileProvingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TileProvingKey({:?}, {:?})", self.shape, self.origin)
    }
}

/// Prefix of the verifying-key hash.
pub const VK_HASH_DOMAIN: &[u8] = b"matproof/v1/vk";

/// The key's identity, pinned in job specs: `SHA-256("matproof/v1/vk" ‖ u64le(tm) ‖
/// u64le(tn) ‖ u64le(kc) ‖ u8(origin) ‖ u32le(len(note)) ‖ note ‖ compressed vk)`. It binds
/// the circuit shape and the stated origin as well as the points, so neither can be
/// relabelled.
pub fn vk_hash(shape: CircuitShape, origin: &KeyOrigin, vk: &VerifyingKey<Bn254>) -> VkHash {
    let mut bytes = Vec::new();
    vk.serialize_compressed(&mut bytes).expect("serializing into a Vec cannot fail");
    let (code, note) = origin.encode();
    let mut h = Sha256::new();
    h.update(VK_HASH_DOMAIN);
    for v in [shape.tm, shape.tn, shape.kc] {
        h.update((v as u64).to_le_bytes());
    }
    h.update([code]);
    h.update((note.len() as u32).to_le_bytes());
    h.update(note.as_bytes());
    h.update(&bytes);
    VkHash(h.finalize().into())
}

/// Checks the structural hygiene of a verifying key.
pub fn check_vk_structure(vk: &VerifyingKey<Bn254>) -> Result<(), KeyFileError> {
    if vk.gamma_abc_g1.len() != PUBLIC_INPUTS + 1 {
        return Err(KeyFileError::Degenerate { reason: "the key does not take exactly 5 public inputs" });
    }
    if vk.gamma_g2 == vk.delta_g2 {
        return Err(KeyFileError::Degenerate { reason: "gamma equals delta" });
    }
    if vk.alpha_g1.is_zero() || vk.beta_g2.is_zero() || vk.gamma_g2.is_zero() || vk.delta_g2.is_zero() {
        return Err(KeyFileError::Degenerate { reason: "a key point is the identity" });
    }
    Ok(())
}

impl TileVerifyingKey {
    /// The key's identity ([`vk_hash`]).
    pub fn hash(&self) -> VkHash {
        vk_hash(self.shape, &self.origin, &self.vk)
    }

    /// The key file bytes.
    pub fn to_file_bytes(&self) -> Vec<u8> {
        let mut body = Vec::new();
        self.vk.serialize_compressed(&mut body).expect("serializing into a Vec cannot fail");
        encode(KIND_VERIFYING, self.shape, &self.origin, &self.hash(), &body)
    }

    /// Parses and validates a key file.
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Self, KeyFileError> {
        let KeyFileParts { shape, origin, hash, body } = decode(bytes, KIND_VERIFYING)?;
        let vk = VerifyingKey::<Bn254>::deserialize_compressed(body)
            .map_err(|e| KeyFileError::Body { reason: e.to_string() })?;
        let key = Self { shape, origin, vk };
        check_hash(&hash, &key)?;
        check_vk_structure(&key.vk)?;
        Ok(key)
    }

    /// Writes the key file.
    pub fn write(&self, path: &Path) -> Result<(), KeyFileError> {
        write_file(path, &self.to_file_bytes())
    }

    /// Reads and validates a key file.
    pub fn read(path: &Path) -> Result<Self, KeyFileError> {
        Self::from_file_bytes(&read_file(path)?)
    }
}

impl TileProvingKey {
    /// The matching verifying key.
    pub fn verifying_key(&self) -> TileVerifyingKey {
        TileVerifyingKey { shape: self.shape, origin: self.origin.clone(), vk: self.pk.vk.clone() }
    }

    /// The key file bytes.
    pub fn to_file_bytes(&self) -> Vec<u8> {
        let mut body = Vec::new();
        self.pk.serialize_compressed(&mut body).expect("serializing into a Vec cannot fail");
        encode(KIND_PROVING, self.shape, &self.origin, &self.verifying_key().hash(), &body)
    }

    /// Parses and validates a key file (every point is decompressed and subgroup-checked).
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Self, KeyFileError> {
        let KeyFileParts { shape, origin, hash, body } = decode(bytes, KIND_PROVING)?;
        let pk = ProvingKey::<Bn254>::deserialize_compressed(body)
            .map_err(|e| KeyFileError::Body { reason: e.to_string() })?;
        let key = Self { shape, origin, pk };
        check_hash(&hash, &key.verifying_key())?;
        check_vk_structure(&key.pk.vk)?;
        Ok(key)
    }

    /// Writes the key file.
    pub fn write(&self, path: &Path) -> Result<(), KeyFileError> {
        write_file(path, &self.to_file_bytes())
    }

    /// Reads and validates a key file.
    pub fn read(path: &Path) -> Result<Self, KeyFileError> {
        Self::from_file_bytes(&read_file(path)?)
    }

    /// Reads a key file through a local load cache beside it (`<path>.loadcache`).
    ///
    /// Validating a proving key means decompressing and subgroup-checking every point: seconds
    /// for even a small circuit, paid on every start of a prover. The first call validates as
    /// [`TileProvingKey::read`] does and then writes the key uncompressed, with the SHA-256 of
    /// the key file it came from and of its own body; later calls check both digests and load
    /// the points without re-validating them. Editing or replacing the key file changes its
    /// digest and the cache is rebuilt; a damaged cache fails its digest and is rebuilt.
    /// This trusts only what this process validated before; a proving key never decides what a
    /// verifier accepts (a bad one makes proofs that fail), and the verifying key inside is
    /// still hashed against the file's header and structurally checked on every load. A cache
    /// that cannot be written (read-only directory) is skipped, never an error.
    pub fn read_cached(path: &Path) -> Result<(Self, CacheOutcome), KeyFileError> {
        let bytes = read_file(path)?;
        let source_digest: [u8; 32] = Sha256::digest(&bytes).into();
        let cache_path = load_cache_path(path);
        let cache_error = match read_load_cache(&cache_path, &source_digest) {
            Ok(Some(raw_body)) => match Self::from_raw_parts(&bytes, &raw_body) {
                Ok(key) => return Ok((key, CacheOutcome::Hit)),
                Err(e) => Some(e.to_string()),
            },
            Ok(None) => None,
            Err(e) => Some(e.to_string()),
        };
        let key = Self::from_file_bytes(&bytes)?;
        let mut raw_body = Vec::new();
        key.pk.serialize_uncompressed(&mut raw_body).expect("serializing into a Vec cannot fail");
        let outcome = match write_load_cache(&cache_path, &source_digest, &raw_body) {
            Ok(()) => CacheOutcome::Written { previous_error: cache_error },
            Err(e) => CacheOutcome::NotWritten { reason: e.to_string() },
        };
        Ok((key, outcome))
    }

    /// The key from a validated file's header and a cache body whose digests were checked.
    fn from_raw_parts(file_bytes: &[u8], raw_body: &[u8]) -> Result<Self, KeyFileError> {
        let KeyFileParts { shape, origin, hash, .. } = decode(file_bytes, KIND_PROVING)?;
        let pk = ProvingKey::<Bn254>::deserialize_uncompressed_unchecked(raw_body)
            .map_err(|e| KeyFileError::Body { reason: format!("load cache: {e}") })?;
        let key = Self { shape, origin, pk };
        check_hash(&hash, &key.verifying_key())?;
        check_vk_structure(&key.pk.vk)?;
        Ok(key)
    }
}

/// What [`TileProvingKey::read_cached`] did with the load cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from the cache.
    Hit,
    /// Validated the key file and wrote the cache (`previous_error`: why an existing cache
    /// was not used, if there was one).
    Written {
        /// Why the cache that was there could not be used.
        previous_error: Option<String>,
    },
    /// Validated the key file; the cache could not be written.
    NotWritten {
        /// Why.
        reason: String,
    },
}

/// Load-cache magic.
const LOAD_CACHE_MAGIC: &[u8; 16] = b"MATPROOF-PKRAW1\n";

/// `<key path>.loadcache`.
pub fn load_cache_path(key_path: &Path) -> std::path::PathBuf {
    let mut name = key_path.as_os_str().to_owned();
    name.push(".loadcache");
    name.into()
}

/// The cache body for `source_digest`, `None` when there is no cache file, an error when one
/// exists but is for another key file or is damaged. Layout: magic, SHA-256 of the source key
/// file, SHA-256 of the body, u64 body length, the body (ark-serialize uncompressed).
fn read_load_cache(path: &Path, source_digest: &[u8; 32]) -> Result<Option<Vec<u8>>, KeyFileError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(KeyFileError::Io { path: path.display().to_string(), source }),
    };
    let stale = |reason: &str| KeyFileError::Header { reason: format!("load cache {}: {reason}", path.display()) };
    if bytes.len() < 88 || &bytes[..16] != LOAD_CACHE_MAGIC {
        return Err(stale("not a load cache"));
    }
    if &bytes[16..48] != source_digest {
        return Err(stale("made from another key file"));
    }
    let body_len = u64::from_le_bytes(bytes[80..88].try_into().expect("8 bytes"));
    let body = &bytes[88..];
    if body_len != body.len() as u64 || body_len > 2 * MAX_KEY_BODY_BYTES {
        return Err(stale("length does not match"));
    }
    if Sha256::digest(body).as_slice() != &bytes[48..80] {
        return Err(stale("body digest does not match (damaged)"));
    }
    Ok(Some(body.to_vec()))
}

fn write_load_cache(path: &Path, source_digest: &[u8; 32], body: &[u8]) -> Result<(), KeyFileError> {
    let mut out = Vec::with_capacity(88 + body.len());
    out.extend_from_slice(LOAD_CACHE_MAGIC);
    out.extend_from_slice(source_digest);
    out.extend_from_slice(&Sha256::digest(body));
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    write_file(path, &out)
}

fn check_hash(header: &VkHash, key: &TileVerifyingKey) -> Result<(), KeyFileError> {
    let actual = key.hash();
    if actual != *header {
        return Err(KeyFileError::HashMismatch { header: *header, actual });
    }
    Ok(())
}

fn encode(kind: u8, shape: CircuitShape, origin: &KeyOrigin, hash: &VkHash, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + body.len());
    out.extend_from_slice(KEY_MAGIC);
    out.push(kind);
    for v in [shape.tm, shape.tn, shape.kc] {
        out.extend_from_slice(&(v as u64).to_le_bytes());
    }
    let (origin_code, note) = origin.encode();
    out.push(origin_code);
    out.extend_from_slice(&(note.len() as u32).to_le_bytes());
    out.extend_from_slice(note.as_bytes());
    out.extend_from_slice(hash.as_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// A parsed key-file header and the key body it precedes.
struct KeyFileParts<'a> {
    shape: CircuitShape,
    origin: KeyOrigin,
    hash: VkHash,
    body: &'a [u8],
}

fn decode(bytes: &[u8], kind: u8) -> Result<KeyFileParts<'_>, KeyFileError> {
    let header = |reason: &str| KeyFileError::Header { reason: reason.into() };
    let mut rest = bytes;
    let mut take = |n: usize, what: &str| -> Result<&[u8], KeyFileError> {
        if rest.len() < n {
            return Err(header(&format!("truncated at {what}")));
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    if take(16, "magic")? != KEY_MAGIC {
        return Err(KeyFileError::BadMagic);
    }
    let found = take(1, "kind")?[0];
    if found != kind {
        return Err(KeyFileError::WrongKind { found, expected: kind });
    }
    let mut dims = [0usize; 3];
    for (dim, name) in dims.iter_mut().zip(["tm", "tn", "kc"]) {
        let v = u64::from_le_bytes(take(8, name)?.try_into().expect("8 bytes"));
        *dim = usize::try_from(v).map_err(|_| header("dimension too large"))?;
    }
    let shape = CircuitShape { tm: dims[0], tn: dims[1], kc: dims[2] };
    if !(1..=MAX_TILE_SIDE).contains(&shape.tm) || !(1..=MAX_TILE_SIDE).contains(&shape.tn) {
        return Err(header("tile side out of range"));
    }
    if !(1..=MAX_K).contains(&shape.kc) {
        return Err(header("kc out of range"));
    }
    let origin_code = take(1, "origin")?[0];
    let note_len = u32::from_le_bytes(take(4, "origin note length")?.try_into().expect("4 bytes")) as usize;
    if note_len > MAX_ORIGIN_NOTE_BYTES {
        return Err(header("origin note too long"));
    }
    let note = std::str::from_utf8(take(note_len, "origin note")?).map_err(|_| header("origin note is not UTF-8"))?;
    let origin = match (origin_code, note_len) {
        (1, 0) => KeyOrigin::DevelopmentSingleParty,
        (2, 1..) => KeyOrigin::Ceremony { note: note.to_string() },
        _ => return Err(header("unknown origin")),
    };
    let hash = VkHash::try_from(take(32, "verifying-key hash")?).map_err(|e| header(&e.to_string()))?;
    let body_len = u64::from_le_bytes(take(8, "body length")?.try_into().expect("8 bytes"));
    if body_len > MAX_KEY_BODY_BYTES || body_len != rest.len() as u64 {
        return Err(header("body length does not match the file"));
    }
    Ok(KeyFileParts { shape, origin, hash, body: rest })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), KeyFileError> {
    let io = |source| KeyFileError::Io { path: path.display().to_string(), source };
    // Write beside, then rename: a crash never leaves a half-written key under the name.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

fn read_file(path: &Path) -> Result<Vec<u8>, KeyFileError> {
    let io = |source| KeyFileError::Io { path: path.display().to_string(), source };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_KEY_BODY_BYTES + 4096 {
        return Err(KeyFileError::Header { reason: "file too large".into() });
    }
    std::fs::read(path).map_err(io)
}
