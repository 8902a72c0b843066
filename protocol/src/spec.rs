//! The job spec, its canonical encoding and `job_id` (DESIGN §3).
//!
//! Canonical encoding (what gets hashed and signed; protobuf is only the transport): fields
//! in the fixed order below, integers little-endian and fixed-width, every byte string
//! prefixed by its length as `u32le`. The layout is spelled out in `docs/formats.md`.
//!
//! ```text
//! u32 version (= 2)
//! u64 m, u64 k, u64 n, u64 tm, u64 tn, u64 kc
//! bytes r_a (32), bytes r_b (32), bytes vk_hash (32)
//! u8 mode (1 = full, 2 = succinct)
//! u8 input_scheme (1 = poseidon, 2 = sha256)
//! u32 samples, u32 freivalds_rounds, u32 quorum, u32 target_fraud_ppm
//! u64 deadline_unix_ms, u64 price, u64 slash_amount
//! bytes consumer (32), bytes provider (32), bytes nonce (1..=64)
//! ```
//! `job_id = SHA-256("matproof/v1/job" ‖ canonical bytes)`.

use sha2::{Digest as _, Sha256};

use crate::identity::PublicKey;
use crate::ids::{JobId, MerkleRoot, VkHash};
use crate::limits::{MAX_FREIVALDS_ROUNDS, MAX_SAMPLES};
use crate::tiling::{CircuitShape, Tiling, TilingError};

/// Version of the canonical encoding (version 1 had no input scheme; it is refused).
pub const SPEC_VERSION: u32 = 2;
/// Prefix of the `job_id` hash.
pub const JOB_ID_DOMAIN: &[u8] = b"matproof/v1/job";
/// Largest nonce, in bytes.
pub const MAX_NONCE_BYTES: usize = 64;

/// How the verifier checks a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerificationMode {
    /// The verifier has `A`, `B`; the provider streams `C`: Freivalds over all of `C` plus
    /// the sampled tile proofs.
    Full,
    /// Commitments only: the sampled tile proofs alone.
    Succinct,
}

impl VerificationMode {
    /// The byte in the canonical encoding.
    pub fn code(self) -> u8 {
        match self {
            VerificationMode::Full => 1,
            VerificationMode::Succinct => 2,
        }
    }

    /// The mode for a canonical byte.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(VerificationMode::Full),
            2 => Some(VerificationMode::Succinct),
            _ => None,
        }
    }
}

/// How `R_A` and `R_B` are computed (DESIGN §3, "Two input commitment schemes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputScheme {
    /// Merkle roots over Poseidon block digests: what a tile circuit opens, so needed
    /// whenever `samples > 0`.
    Poseidon,
    /// Merkle roots over SHA-256 leaves of the block bytes: for full-mode jobs with
    /// `samples = 0`, where no circuit opens a digest (about 300 times faster than Poseidon).
    Sha256,
}

impl InputScheme {
    /// The byte in the canonical encoding.
    pub fn code(self) -> u8 {
        match self {
            InputScheme::Poseidon => 1,
            InputScheme::Sha256 => 2,
        }
    }

    /// The scheme for a canonical byte.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(InputScheme::Poseidon),
            2 => Some(InputScheme::Sha256),
            _ => None,
        }
    }

    /// `poseidon` or `sha256`, as job files and the CLI name it.
    pub fn as_str(self) -> &'static str {
        match self {
            InputScheme::Poseidon => "poseidon",
            InputScheme::Sha256 => "sha256",
        }
    }
}

impl std::str::FromStr for InputScheme {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        match s {
            "poseidon" => Ok(InputScheme::Poseidon),
            "sha256" => Ok(InputScheme::Sha256),
            _ => Err(SpecError::OutOfRange { field: "input_scheme", value: 0, reason: "must be poseidon or sha256" }),
        }
    }
}

/// The checks a job demands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Verification mode.
    pub mode: VerificationMode,
    /// How `R_A`, `R_B` are computed.
    pub input_scheme: InputScheme,
    /// Sampled tiles, `s` (0 only in full mode with the `sha256` scheme: no tile proofs).
    pub samples: u32,
    /// Freivalds rounds (full mode).
    pub freivalds_rounds: u32,
    /// Verifier approvals needed to release payment.
    pub quorum: u32,
    /// The fraction of wrong tiles the receipt states a bound for, in parts per million.
    pub target_fraud_ppm: u32,
    /// Deadline for the provider's response, Unix time in milliseconds.
    pub deadline_unix_ms: u64,
}

/// A job spec: everything `job_id` binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    /// Rows of A and C.
    pub m: u64,
    /// Inner dimension.
    pub k: u64,
    /// Columns of B and C.
    pub n: u64,
    /// Circuit shape.
    pub shape: CircuitShape,
    /// Commitment to A.
    pub r_a: MerkleRoot,
    /// Commitment to B.
    pub r_b: MerkleRoot,
    /// SHA-256 of the tile circuit's verifying key.
    pub vk_hash: VkHash,
    /// Checks demanded.
    pub policy: Policy,
    /// Price, in the ledger's smallest unit.
    pub price: u64,
    /// Stake moved from the provider on a proven fraud, in the ledger's smallest unit.
    pub slash_amount: u64,
    /// Consumer's public key.
    pub consumer: PublicKey,
    /// Provider's public key.
    pub provider: PublicKey,
    /// Makes otherwise identical jobs distinct.
    pub nonce: Vec<u8>,
}

/// A problem decoding or validating a job spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The bytes end early.
    #[error("canonical job spec truncated while reading {field}")]
    Truncated {
        /// Field being read.
        field: &'static str,
    },
    /// Bytes are left after the last field.
    #[error("canonical job spec has {extra} trailing bytes")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// An unknown version.
    #[error("unsupported job spec version {version}")]
    Version {
        /// The version found.
        version: u32,
    },
    /// A byte string has the wrong length.
    #[error("field {field} has length {len}, expected {expected}")]
    FieldLength {
        /// Field.
        field: &'static str,
        /// Length found.
        len: usize,
        /// Length (or upper bound) expected.
        expected: usize,
    },
    /// A field value is out of range.
    #[error("field {field} = {value} is out of range: {reason}")]
    OutOfRange {
        /// Field.
        field: &'static str,
        /// The value.
        value: u64,
        /// Why.
        reason: &'static str,
    },
    /// Dimensions or circuit shape rejected.
    #[error("job shape rejected: {0}")]
    Tiling(#[from] TilingError),
}

impl JobSpec {
    /// The canonical bytes.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(320);
        out.extend_from_slice(&SPEC_VERSION.to_le_bytes());
        for v in [self.m, self.k, self.n, self.shape.tm as u64, self.shape.tn as u64, self.shape.kc as u64] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for bytes in [self.r_a.as_bytes(), self.r_b.as_bytes(), self.vk_hash.as_bytes()] {
            put_bytes(&mut out, bytes);
        }
        out.push(self.policy.mode.code());
        out.push(self.policy.input_scheme.code());
        let p = &self.policy;
        for v in [p.samples, p.freivalds_rounds, p.quorum, p.target_fraud_ppm] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [p.deadline_unix_ms, self.price, self.slash_amount] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        put_bytes(&mut out, &self.consumer.0);
        put_bytes(&mut out, &self.provider.0);
        put_bytes(&mut out, &self.nonce);
        out
    }

    /// Decodes canonical bytes strictly (no trailing bytes) and validates the result.
    pub fn from_canonical_bytes(bytes: &[u8]) -> Result<Self, SpecError> {
        let mut r = Reader { bytes };
        let version = r.u32("version")?;
        if version != SPEC_VERSION {
            return Err(SpecError::Version { version });
        }
        let m = r.u64("m")?;
        let k = r.u64("k")?;
        let n = r.u64("n")?;
        let tm = r.usize("tm")?;
        let tn = r.usize("tn")?;
        let kc = r.usize("kc")?;
        let r_a = MerkleRoot(r.fixed::<32>("r_a")?);
        let r_b = MerkleRoot(r.fixed::<32>("r_b")?);
        let vk_hash = VkHash(r.fixed::<32>("vk_hash")?);
        let mode_code = r.take(1, "mode")?[0];
        let mode = VerificationMode::from_code(mode_code).ok_or(SpecError::OutOfRange {
            field: "mode",
            value: u64::from(mode_code),
            reason: "must be 1 (full) or 2 (succinct)",
        })?;
        let scheme_code = r.take(1, "input_scheme")?[0];
        let input_scheme = InputScheme::from_code(scheme_code).ok_or(SpecError::OutOfRange {
            field: "input_scheme",
            value: u64::from(scheme_code),
            reason: "must be 1 (poseidon) or 2 (sha256)",
        })?;
        let samples = r.u32("samples")?;
        let freivalds_rounds = r.u32("freivalds_rounds")?;
        let quorum = r.u32("quorum")?;
        let target_fraud_ppm = r.u32("target_fraud_ppm")?;
        let deadline_unix_ms = r.u64("deadline_unix_ms")?;
        let price = r.u64("price")?;
        let slash_amount = r.u64("slash_amount")?;
        let consumer = PublicKey(r.fixed::<32>("consumer")?);
        let provider = PublicKey(r.fixed::<32>("provider")?);
        let nonce = r.var(MAX_NONCE_BYTES, "nonce")?.to_vec();
        if !r.bytes.is_empty() {
            return Err(SpecError::TrailingBytes { extra: r.bytes.len() });
        }
        let spec = JobSpec {
            m,
            k,
            n,
            shape: CircuitShape { tm, tn, kc },
            r_a,
            r_b,
            vk_hash,
            policy: Policy {
                mode,
                input_scheme,
                samples,
                freivalds_rounds,
                quorum,
                target_fraud_ppm,
                deadline_unix_ms,
            },
            price,
            slash_amount,
            consumer,
            provider,
            nonce,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// `job_id = SHA-256("matproof/v1/job" ‖ canonical bytes)`.
    pub fn job_id(&self) -> JobId {
        let mut h = Sha256::new();
        h.update(JOB_ID_DOMAIN);
        h.update(self.canonical_bytes());
        JobId(h.finalize().into())
    }

    /// The job's tiling, checked against the limits.
    pub fn tiling(&self) -> Result<Tiling, SpecError> {
        let dim = |field: &'static str, v: u64| {
            usize::try_from(v).map_err(|_| SpecError::OutOfRange { field, value: v, reason: "too large" })
        };
        Ok(Tiling::new(dim("m", self.m)?, dim("k", self.k)?, dim("n", self.n)?, self.shape)?)
    }

    /// Checks every field against the limits and against each other.
    pub fn validate(&self) -> Result<(), SpecError> {
        let tiling = self.tiling()?;
        let p = &self.policy;
        let max_samples = MAX_SAMPLES.min(tiling.tile_count()) as u64;
        if u64::from(p.samples) > max_samples {
            return Err(SpecError::OutOfRange {
                field: "samples",
                value: p.samples.into(),
                reason: "must be at most min(MAX_SAMPLES, tile count)",
            });
        }
        self.validate_scheme()?;
        let rounds_ok = match p.mode {
            VerificationMode::Full => (1..=MAX_FREIVALDS_ROUNDS as u32).contains(&p.freivalds_rounds),
            VerificationMode::Succinct => p.freivalds_rounds <= MAX_FREIVALDS_ROUNDS as u32,
        };
        if !rounds_ok {
            return Err(SpecError::OutOfRange {
                field: "freivalds_rounds",
                value: p.freivalds_rounds.into(),
                reason: "full mode needs 1..=MAX_FREIVALDS_ROUNDS rounds",
            });
        }
        if p.quorum == 0 || p.quorum > 64 {
            return Err(SpecError::OutOfRange { field: "quorum", value: p.quorum.into(), reason: "must be in 1..=64" });
        }
        if p.target_fraud_ppm == 0 || p.target_fraud_ppm > 1_000_000 {
            return Err(SpecError::OutOfRange {
                field: "target_fraud_ppm",
                value: p.target_fraud_ppm.into(),
                reason: "must be in 1..=1000000",
            });
        }
        if self.nonce.is_empty() || self.nonce.len() > MAX_NONCE_BYTES {
            return Err(SpecError::FieldLength { field: "nonce", len: self.nonce.len(), expected: MAX_NONCE_BYTES });
        }
        if self.consumer == self.provider {
            return Err(SpecError::OutOfRange {
                field: "provider",
                value: 0,
                reason: "provider and consumer keys are equal",
            });
        }
        Ok(())
    }
}

impl JobSpec {
    /// Whether the job asks for tile proofs (`samples > 0`): only then does it need a
    /// verifying key and Poseidon input commitments.
    pub fn needs_proofs(&self) -> bool {
        self.policy.samples > 0
    }

    /// `samples = 0` only in full mode with the `sha256` scheme and no key pinned
    /// (`vk_hash` all zero); `samples > 0` only with `poseidon`.
    fn validate_scheme(&self) -> Result<(), SpecError> {
        let p = &self.policy;
        let refused = match (p.samples, p.input_scheme, p.mode) {
            (0, _, VerificationMode::Succinct) => ("samples", "a succinct job needs at least one sample"),
            (0, InputScheme::Poseidon, _) => ("samples", "a job without tile proofs uses the sha256 input scheme"),
            (0, InputScheme::Sha256, _) if self.vk_hash != VkHash([0; 32]) => {
                ("vk_hash", "a job without tile proofs pins no verifying key: must be all zero")
            }
            (1.., InputScheme::Sha256, _) => {
                ("samples", "tile proofs open Poseidon digests: samples > 0 needs poseidon")
            }
            _ => return Ok(()),
        };
        let (field, reason) = refused;
        let value = if field == "samples" { p.samples.into() } else { 0 };
        Err(SpecError::OutOfRange { field, value, reason })
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], SpecError> {
        if self.bytes.len() < len {
            return Err(SpecError::Truncated { field });
        }
        let (head, tail) = self.bytes.split_at(len);
        self.bytes = tail;
        Ok(head)
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, SpecError> {
        let b = self.take(4, field)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, SpecError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8, field)?);
        Ok(u64::from_le_bytes(a))
    }

    fn usize(&mut self, field: &'static str) -> Result<usize, SpecError> {
        let v = self.u64(field)?;
        usize::try_from(v).map_err(|_| SpecError::OutOfRange { field, value: v, reason: "too large" })
    }

    fn var(&mut self, max: usize, field: &'static str) -> Result<&'a [u8], SpecError> {
        let len = self.u32(field)? as usize;
        if len > max {
            return Err(SpecError::FieldLength { field, len, expected: max });
        }
        self.take(len, field)
    }

    fn fixed<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], SpecError> {
        let bytes = self.var(N, field)?;
        bytes.try_into().map_err(|_| SpecError::FieldLength { field, len: bytes.len(), expected: N })
    }
}

/// A valid spec (256³, tile 4×4, full mode) for examples, documentation and tests; its
/// canonical bytes and `job_id` are pinned by known-answer tests.
pub fn example_spec() -> JobSpec {
    JobSpec {
        m: 256,
        k: 256,
        n: 256,
        shape: CircuitShape { tm: 4, tn: 4, kc: 256 },
        r_a: MerkleRoot([0xa1; 32]),
        r_b: MerkleRoot([0xb2; 32]),
        vk_hash: VkHash([0x5c; 32]),
        policy: Policy {
            mode: VerificationMode::Full,
            input_scheme: crate::spec::InputScheme::Poseidon,
            samples: 4,
            freivalds_rounds: 2,
            quorum: 1,
            target_fraud_ppm: 10_000,
            deadline_unix_ms: 1_800_000_000_000,
        },
        price: 1_000,
        slash_amount: 5_000,
        consumer: PublicKey([0x11; 32]),
        provider: PublicKey([0x22; 32]),
        nonce: vec![0x42; 16],
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample_spec() -> JobSpec {
        super::example_spec()
    }

    #[test]
    fn round_trip_and_known_answer_job_id() {
        let spec = sample_spec();
        let bytes = spec.canonical_bytes();
        assert_eq!(bytes.len(), 4 + 6 * 8 + 3 * 36 + 2 + 4 * 4 + 3 * 8 + 2 * 36 + 4 + 16);
        assert_eq!(JobSpec::from_canonical_bytes(&bytes).unwrap(), spec);
        // Pinned: a change here is a protocol change (every job id moves).
        assert_eq!(hex::encode(spec.job_id()), KNOWN_JOB_ID);
    }

    const KNOWN_JOB_ID: &str = "08a29cc507c3d18caff8d2b7012bfaac738627543b4c94280ab21f35639f14af";

    #[test]
    fn every_field_changes_the_job_id() {
        let base = sample_spec();
        let id = base.job_id();
        let mut variants = Vec::new();
        let mut s = base.clone();
        s.m += 1;
        variants.push(s);
        let mut s = base.clone();
        s.k -= 1;
        variants.push(s);
        let mut s = base.clone();
        s.n += 1;
        variants.push(s);
        let mut s = base.clone();
        s.shape.tm = 8;
        variants.push(s);
        let mut s = base.clone();
        s.shape.tn = 8;
        variants.push(s);
        let mut s = base.clone();
        s.shape.kc = 512;
        variants.push(s);
        let mut s = base.clone();
        s.r_a.0[0] ^= 1;
        variants.push(s);
        let mut s = base.clone();
        s.r_b.0[31] ^= 1;
        variants.push(s);
        let mut s = base.clone();
        s.vk_hash.0[5] ^= 1;
        variants.push(s);
        let mut s = base.clone();
        s.policy.mode = VerificationMode::Succinct;
        variants.push(s);
        let mut s = base.clone();
        s.policy.samples = 5;
        variants.push(s);
        let mut s = base.clone();
        s.policy.freivalds_rounds = 3;
        variants.push(s);
        let mut s = base.clone();
        s.policy.quorum = 2;
        variants.push(s);
        let mut s = base.clone();
        s.policy.target_fraud_ppm = 1;
        variants.push(s);
        let mut s = base.clone();
        s.policy.deadline_unix_ms += 1;
        variants.push(s);
        let mut s = base.clone();
        s.price += 1;
        variants.push(s);
        let mut s = base.clone();
        s.slash_amount += 1;
        variants.push(s);
        let mut s = base.clone();
        s.consumer.0[0] ^= 1;
        variants.push(s);
        let mut s = base.clone();
        s.provider.0[0] ^= 1;
        variants.push(s);
        let mut s = base.clone();
        s.nonce.push(0);
        variants.push(s);
        for (i, v) in variants.iter().enumerate() {
            assert_ne!(v.job_id(), id, "variant {i}");
        }
    }

    #[test]
    fn malformed_bytes_are_errors() {
        let bytes = sample_spec().canonical_bytes();
        for cut in 0..bytes.len() {
            assert!(JobSpec::from_canonical_bytes(&bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(JobSpec::from_canonical_bytes(&longer), Err(SpecError::TrailingBytes { extra: 1 })));
        // Version 1 (no input scheme) is refused by its version.
        let mut bad_version = bytes.clone();
        bad_version[0] = 1;
        assert!(matches!(JobSpec::from_canonical_bytes(&bad_version), Err(SpecError::Version { version: 1 })));
        let mut bad_scheme = bytes.clone();
        bad_scheme[4 + 6 * 8 + 3 * 36 + 1] = 3;
        assert!(matches!(
            JobSpec::from_canonical_bytes(&bad_scheme),
            Err(SpecError::OutOfRange { field: "input_scheme", value: 3, .. })
        ));
    }

    #[test]
    fn samples_and_input_scheme_go_together() {
        let no_proofs = |mode, scheme, vk: u8| {
            let mut s = sample_spec();
            s.policy.samples = 0;
            s.policy.mode = mode;
            s.policy.input_scheme = scheme;
            s.vk_hash = VkHash([vk; 32]);
            s.validate()
        };
        // Full mode without proofs: sha256 inputs, no key pinned.
        assert!(no_proofs(VerificationMode::Full, InputScheme::Sha256, 0).is_ok());
        assert!(no_proofs(VerificationMode::Full, InputScheme::Sha256, 5).is_err(), "a pinned key");
        assert!(no_proofs(VerificationMode::Full, InputScheme::Poseidon, 0).is_err(), "poseidon without proofs");
        assert!(no_proofs(VerificationMode::Succinct, InputScheme::Sha256, 0).is_err(), "succinct without samples");
        // Proofs open Poseidon digests.
        let mut s = sample_spec();
        s.policy.input_scheme = InputScheme::Sha256;
        let e = s.validate().unwrap_err();
        assert!(e.to_string().contains("needs poseidon"), "{e}");
        assert!(sample_spec().needs_proofs());
        // The scheme is in the job id.
        let mut s = sample_spec();
        s.policy.samples = 0;
        s.policy.input_scheme = InputScheme::Sha256;
        let mut t = s.clone();
        t.policy.input_scheme = InputScheme::Poseidon;
        assert_ne!(s.job_id(), t.job_id());
        assert_eq!("sha256".parse::<InputScheme>().unwrap(), InputScheme::Sha256);
        assert!("blake3".parse::<InputScheme>().is_err());
    }

    #[test]
    fn invalid_policies_are_refused() {
        let mut s = sample_spec();
        s.policy.samples = 0;
        assert!(s.validate().is_err());
        let mut s = sample_spec();
        s.policy.samples = 5000;
        assert!(s.validate().is_err());
        let mut s = sample_spec();
        s.policy.freivalds_rounds = 0;
        assert!(s.validate().is_err());
        let mut s = sample_spec();
        s.shape.kc = 100;
        assert!(matches!(s.validate(), Err(SpecError::Tiling(_))));
        let mut s = sample_spec();
        s.provider = s.consumer;
        assert!(s.validate().is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let _ = JobSpec::from_canonical_bytes(&bytes);
        }
    }
}
