//! The protobuf wire format (`proto/matproof/v1/matproof.proto`) and its conversion to core
//! types. Only this module knows protobuf; every conversion from the wire validates every
//! field and names the one at fault, so a service can answer `INVALID_ARGUMENT: <field>`.

use crate::fraud::FraudProof;
use crate::identity::{PublicKey, Signature};
use crate::limits::{MAX_K, MAX_MERKLE_PATH_LEN, MAX_MESSAGE_BYTES, MAX_SAMPLES, MAX_TILE_SIDE};
use crate::merkle::InclusionProof;
use crate::opening::{TILE_PROOF_BYTES, TileOpening};
use crate::receipt::{
    CheckSummary, MAX_REASON_BYTES, MAX_STATEMENT_BYTES, MAX_VERDICTS, RECEIPT_VERSION, Receipt, SignedChallenge,
    SignedResponseEnd, SignedVerdict, Verdict,
};
use crate::spec::{InputScheme, JobSpec, Policy, SpecError, VerificationMode};
use crate::tiling::CircuitShape;
use crate::transcript::Challenge;

/// Generated protobuf messages (and, with feature `grpc`, the tonic service stubs).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/matproof.v1.rs"));

    /// The encoded `google.protobuf.FileDescriptorSet` of `matproof/v1/matproof.proto`, for
    /// gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/matproof_descriptor.bin"));
}

/// A field of a wire message that cannot become a core value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid field {field}: {reason}")]
pub struct WireError {
    /// Dotted path of the field, e.g. `spec.r_a` or `opening.c_path.path`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl WireError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }

    fn within(self, parent: &str) -> Self {
        Self { field: format!("{parent}.{}", self.field), reason: self.reason }
    }
}

fn fixed32<T: From<[u8; 32]>>(field: &str, bytes: &[u8]) -> Result<T, WireError> {
    let array: [u8; 32] =
        bytes.try_into().map_err(|_| WireError::new(field, format!("{} bytes, expected 32", bytes.len())))?;
    Ok(T::from(array))
}

fn usize_field(field: &str, value: u64) -> Result<usize, WireError> {
    usize::try_from(value).map_err(|_| WireError::new(field, "too large"))
}

fn required<'a, T>(field: &str, value: &'a Option<T>) -> Result<&'a T, WireError> {
    value.as_ref().ok_or_else(|| WireError::new(field, "missing"))
}

/// A 32-byte job id, root, seed or key hash from the wire, as the type the caller names.
pub fn digest_from_wire<T: From<[u8; 32]>>(field: &str, bytes: &[u8]) -> Result<T, WireError> {
    fixed32(field, bytes)
}

impl From<&JobSpec> for pb::JobSpec {
    fn from(spec: &JobSpec) -> Self {
        pb::JobSpec {
            m: spec.m,
            k: spec.k,
            n: spec.n,
            tm: spec.shape.tm as u64,
            tn: spec.shape.tn as u64,
            kc: spec.shape.kc as u64,
            r_a: spec.r_a.to_vec(),
            r_b: spec.r_b.to_vec(),
            vk_hash: spec.vk_hash.to_vec(),
            mode: match spec.policy.mode {
                VerificationMode::Full => pb::VerificationMode::Full,
                VerificationMode::Succinct => pb::VerificationMode::Succinct,
            } as i32,
            input_scheme: match spec.policy.input_scheme {
                InputScheme::Poseidon => pb::InputScheme::Poseidon,
                InputScheme::Sha256 => pb::InputScheme::Sha256,
            } as i32,
            samples: spec.policy.samples,
            freivalds_rounds: spec.policy.freivalds_rounds,
            quorum: spec.policy.quorum,
            target_fraud_ppm: spec.policy.target_fraud_ppm,
            deadline_unix_ms: spec.policy.deadline_unix_ms,
            price: spec.price,
            slash_amount: spec.slash_amount,
            consumer: spec.consumer.0.to_vec(),
            provider: spec.provider.0.to_vec(),
            nonce: spec.nonce.clone(),
        }
    }
}

impl TryFrom<&pb::JobSpec> for JobSpec {
    type Error = WireError;

    fn try_from(p: &pb::JobSpec) -> Result<Self, WireError> {
        let mode = match pb::VerificationMode::try_from(p.mode) {
            Ok(pb::VerificationMode::Full) => VerificationMode::Full,
            Ok(pb::VerificationMode::Succinct) => VerificationMode::Succinct,
            _ => return Err(WireError::new("mode", "must be FULL or SUCCINCT")),
        };
        let input_scheme = match pb::InputScheme::try_from(p.input_scheme) {
            Ok(pb::InputScheme::Poseidon) => InputScheme::Poseidon,
            Ok(pb::InputScheme::Sha256) => InputScheme::Sha256,
            _ => return Err(WireError::new("input_scheme", "must be POSEIDON or SHA256")),
        };
        let spec = JobSpec {
            m: p.m,
            k: p.k,
            n: p.n,
            shape: CircuitShape {
                tm: usize_field("tm", p.tm)?,
                tn: usize_field("tn", p.tn)?,
                kc: usize_field("kc", p.kc)?,
            },
            r_a: fixed32("r_a", &p.r_a)?,
            r_b: fixed32("r_b", &p.r_b)?,
            vk_hash: fixed32("vk_hash", &p.vk_hash)?,
            policy: Policy {
                mode,
                input_scheme,
                samples: p.samples,
                freivalds_rounds: p.freivalds_rounds,
                quorum: p.quorum,
                target_fraud_ppm: p.target_fraud_ppm,
                deadline_unix_ms: p.deadline_unix_ms,
            },
            price: p.price,
            slash_amount: p.slash_amount,
            consumer: PublicKey(fixed32("consumer", &p.consumer)?),
            provider: PublicKey(fixed32("provider", &p.provider)?),
            nonce: p.nonce.clone(),
        };
        spec.validate().map_err(|e| WireError::new(spec_error_field(&e), e.to_string()))?;
        Ok(spec)
    }
}

/// The wire field a spec validation error is about.
fn spec_error_field(error: &SpecError) -> String {
    match error {
        SpecError::OutOfRange { field, .. } | SpecError::FieldLength { field, .. } | SpecError::Truncated { field } => {
            (*field).to_string()
        }
        SpecError::Tiling(tiling) => match tiling {
            crate::tiling::TilingError::Dimension { name, .. } | crate::tiling::TilingError::TileSide { name, .. } => {
                (*name).to_string()
            }
            crate::tiling::TilingError::Depth { .. } => "kc".into(),
            _ => "tm".into(),
        },
        SpecError::TrailingBytes { .. } | SpecError::Version { .. } => "spec".into(),
    }
}

impl From<&InclusionProof> for pb::InclusionProof {
    fn from(p: &InclusionProof) -> Self {
        pb::InclusionProof {
            leaf_index: p.leaf_index,
            tree_size: p.tree_size,
            path: p.path.iter().map(|h| h.to_vec()).collect(),
        }
    }
}

impl TryFrom<&pb::InclusionProof> for InclusionProof {
    type Error = WireError;

    fn try_from(p: &pb::InclusionProof) -> Result<Self, WireError> {
        if p.path.len() > MAX_MERKLE_PATH_LEN {
            return Err(WireError::new("path", format!("{} hashes, at most {MAX_MERKLE_PATH_LEN}", p.path.len())));
        }
        if p.leaf_index >= p.tree_size {
            return Err(WireError::new("leaf_index", "not below tree_size"));
        }
        let path = p.path.iter().map(|h| fixed32("path", h)).collect::<Result<Vec<_>, _>>()?;
        Ok(InclusionProof { leaf_index: p.leaf_index, tree_size: p.tree_size, path })
    }
}

fn path_from_wire(field: &str, p: &Option<pb::InclusionProof>) -> Result<InclusionProof, WireError> {
    InclusionProof::try_from(required(field, p)?).map_err(|e| e.within(field))
}

const MAX_TILE_ENTRIES: usize = MAX_TILE_SIDE * MAX_TILE_SIDE;

impl From<&TileOpening> for pb::TileOpening {
    fn from(o: &TileOpening) -> Self {
        pb::TileOpening {
            tile_index: o.tile_index,
            c_tile: o.c_tile.clone(),
            c_path: Some((&o.c_path).into()),
            d_a: o.d_a.to_vec(),
            a_path: Some((&o.a_path).into()),
            d_b: o.d_b.to_vec(),
            b_path: Some((&o.b_path).into()),
            proof: o.proof.clone(),
        }
    }
}

impl TryFrom<&pb::TileOpening> for TileOpening {
    type Error = WireError;

    fn try_from(o: &pb::TileOpening) -> Result<Self, WireError> {
        if o.c_tile.len() > MAX_TILE_ENTRIES {
            return Err(WireError::new("c_tile", format!("{} entries, at most {MAX_TILE_ENTRIES}", o.c_tile.len())));
        }
        if o.proof.len() != TILE_PROOF_BYTES {
            return Err(WireError::new("proof", format!("{} bytes, expected {TILE_PROOF_BYTES}", o.proof.len())));
        }
        Ok(TileOpening {
            tile_index: o.tile_index,
            c_tile: o.c_tile.clone(),
            c_path: path_from_wire("c_path", &o.c_path)?,
            d_a: fixed32("d_a", &o.d_a)?,
            a_path: path_from_wire("a_path", &o.a_path)?,
            d_b: fixed32("d_b", &o.d_b)?,
            b_path: path_from_wire("b_path", &o.b_path)?,
            proof: o.proof.clone(),
        })
    }
}

fn bytes_to_i8(bytes: &[u8]) -> Vec<i8> {
    bytes.iter().map(|&b| b as i8).collect()
}

fn i8_to_bytes(values: &[i8]) -> Vec<u8> {
    values.iter().map(|&v| v as u8).collect()
}

impl From<&FraudProof> for pb::FraudProof {
    fn from(f: &FraudProof) -> Self {
        pb::FraudProof {
            row: f.row,
            col: f.col,
            a_block: i8_to_bytes(&f.a_block),
            a_path: Some((&f.a_path).into()),
            b_block: i8_to_bytes(&f.b_block),
            b_path: Some((&f.b_path).into()),
            c_tile: f.c_tile.clone(),
            c_path: Some((&f.c_path).into()),
        }
    }
}

impl TryFrom<&pb::FraudProof> for FraudProof {
    type Error = WireError;

    fn try_from(f: &pb::FraudProof) -> Result<Self, WireError> {
        let max_block = MAX_TILE_SIDE * MAX_K;
        for (field, len) in [("a_block", f.a_block.len()), ("b_block", f.b_block.len())] {
            if len > max_block {
                return Err(WireError::new(field, format!("{len} bytes, at most {max_block}")));
            }
        }
        if f.c_tile.len() > MAX_TILE_ENTRIES {
            return Err(WireError::new("c_tile", format!("{} entries, at most {MAX_TILE_ENTRIES}", f.c_tile.len())));
        }
        Ok(FraudProof {
            row: f.row,
            col: f.col,
            a_block: bytes_to_i8(&f.a_block),
            a_path: path_from_wire("a_path", &f.a_path)?,
            b_block: bytes_to_i8(&f.b_block),
            b_path: path_from_wire("b_path", &f.b_path)?,
            c_tile: f.c_tile.clone(),
            c_path: path_from_wire("c_path", &f.c_path)?,
        })
    }
}

/// The challenge values of a wire challenge (its signature is checked by the caller).
impl TryFrom<&pb::Challenge> for Challenge {
    type Error = WireError;

    fn try_from(c: &pb::Challenge) -> Result<Self, WireError> {
        Ok(Challenge {
            job_id: fixed32("job_id", &c.job_id)?,
            r_c: fixed32("r_c", &c.r_c)?,
            seed: fixed32("seed", &c.seed)?,
        })
    }
}

fn signature_from_wire(field: &str, bytes: &[u8]) -> Result<Signature, WireError> {
    let array: [u8; 64] =
        bytes.try_into().map_err(|_| WireError::new(field, format!("{} bytes, expected 64", bytes.len())))?;
    Ok(Signature(array))
}

fn mode_to_wire(mode: VerificationMode) -> i32 {
    match mode {
        VerificationMode::Full => pb::VerificationMode::Full as i32,
        VerificationMode::Succinct => pb::VerificationMode::Succinct as i32,
    }
}

fn mode_from_wire(field: &str, mode: i32) -> Result<VerificationMode, WireError> {
    match pb::VerificationMode::try_from(mode) {
        Ok(pb::VerificationMode::Full) => Ok(VerificationMode::Full),
        Ok(pb::VerificationMode::Succinct) => Ok(VerificationMode::Succinct),
        _ => Err(WireError::new(field, "must be FULL or SUCCINCT")),
    }
}

fn verdict_from_wire(field: &str, verdict: i32) -> Result<Verdict, WireError> {
    match pb::Verdict::try_from(verdict) {
        Ok(pb::Verdict::Approved) => Ok(Verdict::Approved),
        Ok(pb::Verdict::Rejected) => Ok(Verdict::Rejected),
        _ => Err(WireError::new(field, "must be APPROVED or REJECTED")),
    }
}

fn bounded_text(field: &str, text: &str, max_bytes: usize) -> Result<String, WireError> {
    if text.len() > max_bytes {
        return Err(WireError::new(field, format!("{} bytes, at most {max_bytes}", text.len())));
    }
    Ok(text.to_string())
}

impl From<&SignedChallenge> for pb::Challenge {
    fn from(c: &SignedChallenge) -> Self {
        pb::Challenge {
            job_id: c.challenge.job_id.to_vec(),
            r_c: c.challenge.r_c.to_vec(),
            seed: c.challenge.seed.to_vec(),
            verifier_key: c.verifier_key.0.to_vec(),
            verifier_signature: c.signature.0.to_vec(),
        }
    }
}

/// A challenge with its verifier's key and signature (the signature is not checked here:
/// call [`SignedChallenge::verify`]).
impl TryFrom<&pb::Challenge> for SignedChallenge {
    type Error = WireError;

    fn try_from(c: &pb::Challenge) -> Result<Self, WireError> {
        Ok(SignedChallenge {
            challenge: Challenge::try_from(c)?,
            verifier_key: PublicKey(fixed32("verifier_key", &c.verifier_key)?),
            signature: signature_from_wire("verifier_signature", &c.verifier_signature)?,
        })
    }
}

impl From<&SignedVerdict> for pb::SignedVerdict {
    fn from(v: &SignedVerdict) -> Self {
        pb::SignedVerdict {
            job_id: v.job_id.to_vec(),
            verdict: match v.verdict {
                Verdict::Approved => pb::Verdict::Approved,
                Verdict::Rejected => pb::Verdict::Rejected,
            } as i32,
            reason: v.reason.clone(),
            verifier_key: v.verifier_key.0.to_vec(),
            verifier_signature: v.signature.0.to_vec(),
            r_c: v.r_c.to_vec(),
        }
    }
}

/// A signed verdict (the signature is not checked here: call [`SignedVerdict::verify`]).
impl TryFrom<&pb::SignedVerdict> for SignedVerdict {
    type Error = WireError;

    fn try_from(v: &pb::SignedVerdict) -> Result<Self, WireError> {
        Ok(SignedVerdict {
            job_id: fixed32("job_id", &v.job_id)?,
            r_c: fixed32("r_c", &v.r_c)?,
            verdict: verdict_from_wire("verdict", v.verdict)?,
            reason: bounded_text("reason", &v.reason, MAX_REASON_BYTES)?,
            verifier_key: PublicKey(fixed32("verifier_key", &v.verifier_key)?),
            signature: signature_from_wire("verifier_signature", &v.verifier_signature)?,
        })
    }
}

impl From<&CheckSummary> for pb::CheckSummary {
    fn from(s: &CheckSummary) -> Self {
        pb::CheckSummary {
            mode: mode_to_wire(s.mode),
            freivalds_rounds: s.freivalds_rounds,
            samples: s.samples,
            tiles: s.tiles,
            escape_one_wrong_tile: s.escape_one_wrong_tile,
            escape_policy_fraction: s.escape_policy_fraction,
            policy_fraction: s.policy_fraction,
            statement: s.statement.clone(),
            target_fraud_ppm: s.target_fraud_ppm,
        }
    }
}

impl TryFrom<&pb::CheckSummary> for CheckSummary {
    type Error = WireError;

    fn try_from(s: &pb::CheckSummary) -> Result<Self, WireError> {
        for (field, value) in [
            ("escape_one_wrong_tile", s.escape_one_wrong_tile),
            ("escape_policy_fraction", s.escape_policy_fraction),
            ("policy_fraction", s.policy_fraction),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(WireError::new(field, "not a probability in [0, 1]"));
            }
        }
        Ok(CheckSummary {
            mode: mode_from_wire("mode", s.mode)?,
            freivalds_rounds: s.freivalds_rounds,
            samples: s.samples,
            tiles: s.tiles,
            target_fraud_ppm: s.target_fraud_ppm,
            escape_one_wrong_tile: s.escape_one_wrong_tile,
            escape_policy_fraction: s.escape_policy_fraction,
            policy_fraction: s.policy_fraction,
            statement: bounded_text("statement", &s.statement, MAX_STATEMENT_BYTES)?,
        })
    }
}

impl From<&Receipt> for pb::Receipt {
    fn from(r: &Receipt) -> Self {
        pb::Receipt {
            version: r.version,
            spec: Some((&r.spec).into()),
            consumer_signature: r.consumer_signature.0.to_vec(),
            r_c: r.r_c.to_vec(),
            challenge: Some((&r.challenge).into()),
            openings: r.openings.iter().map(Into::into).collect(),
            summary: Some((&r.summary).into()),
            verdicts: r.verdicts.iter().map(Into::into).collect(),
            fraud_proof: r.fraud_proof.as_ref().map(Into::into),
            commit_signature: r.commit_signature.0.to_vec(),
            response_end: Some(pb::ReceiptResponseEnd {
                c_digest: r.response_end.c_digest.to_vec(),
                provider_signature: r.response_end.signature.0.to_vec(),
            }),
        }
    }
}

/// The provider's response end as a receipt keeps it (the signature is checked by the audit).
impl TryFrom<&pb::ReceiptResponseEnd> for SignedResponseEnd {
    type Error = WireError;

    fn try_from(e: &pb::ReceiptResponseEnd) -> Result<Self, WireError> {
        Ok(SignedResponseEnd {
            c_digest: fixed32("c_digest", &e.c_digest)?,
            signature: signature_from_wire("provider_signature", &e.provider_signature)?,
        })
    }
}

/// A receipt, every field validated (signatures, paths and proofs are checked by the audit,
/// not here).
impl TryFrom<&pb::Receipt> for Receipt {
    type Error = WireError;

    fn try_from(r: &pb::Receipt) -> Result<Self, WireError> {
        if r.version != RECEIPT_VERSION {
            return Err(WireError::new("version", format!("{}, this code reads {RECEIPT_VERSION}", r.version)));
        }
        if r.openings.len() > MAX_SAMPLES {
            return Err(WireError::new("openings", format!("{} openings, at most {MAX_SAMPLES}", r.openings.len())));
        }
        if r.verdicts.is_empty() || r.verdicts.len() > MAX_VERDICTS {
            return Err(WireError::new(
                "verdicts",
                format!("{} verdicts, expected 1..={MAX_VERDICTS}", r.verdicts.len()),
            ));
        }
        let spec = JobSpec::try_from(required("spec", &r.spec)?).map_err(|e| e.within("spec"))?;
        let openings = r
            .openings
            .iter()
            .enumerate()
            .map(|(i, o)| TileOpening::try_from(o).map_err(|e| e.within(&format!("openings[{i}]"))))
            .collect::<Result<Vec<_>, _>>()?;
        let verdicts = r
            .verdicts
            .iter()
            .enumerate()
            .map(|(i, v)| SignedVerdict::try_from(v).map_err(|e| e.within(&format!("verdicts[{i}]"))))
            .collect::<Result<Vec<_>, _>>()?;
        let fraud_proof = match &r.fraud_proof {
            Some(f) => Some(FraudProof::try_from(f).map_err(|e| e.within("fraud_proof"))?),
            None => None,
        };
        Ok(Receipt {
            version: r.version,
            spec,
            consumer_signature: signature_from_wire("consumer_signature", &r.consumer_signature)?,
            r_c: fixed32("r_c", &r.r_c)?,
            commit_signature: signature_from_wire("commit_signature", &r.commit_signature)?,
            response_end: SignedResponseEnd::try_from(required("response_end", &r.response_end)?)
                .map_err(|e| e.within("response_end"))?,
            challenge: SignedChallenge::try_from(required("challenge", &r.challenge)?)
                .map_err(|e| e.within("challenge"))?,
            openings,
            summary: CheckSummary::try_from(required("summary", &r.summary)?).map_err(|e| e.within("summary"))?,
            verdicts,
            fraud_proof,
        })
    }
}

/// Why bytes are not a receipt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptDecodeError {
    /// Larger than [`MAX_MESSAGE_BYTES`].
    #[error("receipt is {bytes} bytes, at most {max}")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// A receipt of another format version (version 1 carried no provider signatures).
    #[error("receipt format version {found}: this code reads only version {expected}{}", if *found == 1 {
        " (version 1 receipts carry no provider commit and response signatures; fetch the receipt again from an \
         upgraded node)"
    } else { "" })]
    Version {
        /// The receipt's version.
        found: u32,
        /// [`RECEIPT_VERSION`].
        expected: u32,
    },
    /// Not a protobuf `Receipt`.
    #[error("not a receipt: {reason}")]
    Protobuf {
        /// The decoder's message.
        reason: String,
    },
    /// A field is invalid.
    #[error(transparent)]
    Field(#[from] WireError),
}

/// The protobuf bytes of a receipt (what goes on disk).
pub fn encode_receipt(receipt: &Receipt) -> Vec<u8> {
    use prost::Message;
    pb::Receipt::from(receipt).encode_to_vec()
}

/// A receipt from its protobuf bytes, size-limited and validated field by field.
pub fn decode_receipt(bytes: &[u8]) -> Result<Receipt, ReceiptDecodeError> {
    use prost::Message;
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(ReceiptDecodeError::TooLarge { bytes: bytes.len(), max: MAX_MESSAGE_BYTES });
    }
    let message = pb::Receipt::decode(bytes).map_err(|e| ReceiptDecodeError::Protobuf { reason: e.to_string() })?;
    if message.version != RECEIPT_VERSION {
        return Err(ReceiptDecodeError::Version { found: message.version, expected: RECEIPT_VERSION });
    }
    Ok(Receipt::try_from(&message)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{MerkleRoot, Seed};
    use crate::merkle::MerkleTree;
    use prost::Message;

    /// A named mutation of a wire message, for table-driven tests.
    type Mutation<T> = (&'static str, Box<dyn Fn(&mut T)>);

    fn spec() -> JobSpec {
        crate::spec::tests::sample_spec()
    }

    fn proof(leaf: u64, size: usize) -> InclusionProof {
        let leaves: Vec<[u8; 4]> = (0..size as u32).map(|i| i.to_le_bytes()).collect();
        MerkleTree::from_leaves(&leaves).prove(leaf).unwrap()
    }

    fn opening() -> TileOpening {
        TileOpening {
            tile_index: 3,
            c_tile: vec![1, -2, i32::MIN, i32::MAX],
            c_path: proof(3, 9),
            d_a: [1; 32],
            a_path: proof(1, 3),
            d_b: [2; 32],
            b_path: proof(0, 3),
            proof: vec![7; 128],
        }
    }

    #[test]
    fn round_trips_through_bytes() {
        let s = spec();
        let bytes = pb::JobSpec::from(&s).encode_to_vec();
        assert_eq!(JobSpec::try_from(&pb::JobSpec::decode(bytes.as_slice()).unwrap()).unwrap(), s);
        let o = opening();
        let bytes = pb::TileOpening::from(&o).encode_to_vec();
        assert_eq!(TileOpening::try_from(&pb::TileOpening::decode(bytes.as_slice()).unwrap()).unwrap(), o);
        let f = FraudProof {
            row: 5,
            col: 6,
            a_block: vec![-128, 0, 127],
            a_path: proof(0, 1),
            b_block: vec![-1, 1],
            b_path: proof(2, 5),
            c_tile: vec![9, -9],
            c_path: proof(4, 7),
        };
        let bytes = pb::FraudProof::from(&f).encode_to_vec();
        assert_eq!(FraudProof::try_from(&pb::FraudProof::decode(bytes.as_slice()).unwrap()).unwrap(), f);
    }

    #[test]
    fn each_bad_spec_field_is_named() {
        let good = pb::JobSpec::from(&spec());
        let cases: Vec<Mutation<pb::JobSpec>> = vec![
            ("r_a", Box::new(|p| p.r_a.pop().map(drop).unwrap_or(()))),
            ("r_b", Box::new(|p| p.r_b.push(0))),
            ("vk_hash", Box::new(|p| p.vk_hash.clear())),
            ("consumer", Box::new(|p| p.consumer.truncate(31))),
            ("provider", Box::new(|p| p.provider.push(1))),
            ("mode", Box::new(|p| p.mode = 0)),
            ("mode", Box::new(|p| p.mode = 99)),
            ("samples", Box::new(|p| p.samples = 0)),
            ("freivalds_rounds", Box::new(|p| p.freivalds_rounds = 0)),
            ("quorum", Box::new(|p| p.quorum = 0)),
            ("target_fraud_ppm", Box::new(|p| p.target_fraud_ppm = 2_000_000)),
            ("nonce", Box::new(|p| p.nonce.clear())),
            ("m", Box::new(|p| p.m = 0)),
            ("n", Box::new(|p| p.n = 1 << 40)),
            ("tm", Box::new(|p| p.tm = 0)),
            ("kc", Box::new(|p| p.kc = 1)),
        ];
        for (field, mutate) in cases {
            let mut p = good.clone();
            mutate(&mut p);
            let err = JobSpec::try_from(&p).unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
    }

    #[test]
    fn each_bad_opening_field_is_named() {
        let good = pb::TileOpening::from(&opening());
        let cases: Vec<Mutation<pb::TileOpening>> = vec![
            ("proof", Box::new(|o| o.proof.push(0))),
            ("d_a", Box::new(|o| o.d_a.pop().map(drop).unwrap_or(()))),
            ("d_b", Box::new(|o| o.d_b.clear())),
            ("c_path", Box::new(|o| o.c_path = None)),
            ("a_path.path", Box::new(|o| o.a_path.as_mut().unwrap().path[0].push(0))),
            ("b_path.leaf_index", Box::new(|o| o.b_path.as_mut().unwrap().leaf_index = 3)),
            ("c_path.path", Box::new(|o| o.c_path.as_mut().unwrap().path = vec![vec![0; 32]; 65])),
            ("c_tile", Box::new(|o| o.c_tile = vec![0; MAX_TILE_ENTRIES + 1])),
        ];
        for (field, mutate) in cases {
            let mut o = good.clone();
            mutate(&mut o);
            let err = TileOpening::try_from(&o).unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
    }

    fn receipt() -> Receipt {
        use crate::identity::Identity;
        let verifier = Identity::from_seed([7; 32]);
        let s = spec();
        let job_id = s.job_id();
        Receipt {
            version: RECEIPT_VERSION,
            consumer_signature: Signature([4; 64]),
            r_c: MerkleRoot([5; 32]),
            challenge: SignedChallenge::sign(
                Challenge { job_id, r_c: MerkleRoot([5; 32]), seed: Seed([6; 32]) },
                &verifier,
            ),
            openings: vec![opening(), opening()],
            summary: CheckSummary {
                mode: VerificationMode::Full,
                freivalds_rounds: 2,
                samples: 2,
                tiles: 9,
                target_fraud_ppm: 10_000,
                escape_one_wrong_tile: 0.79,
                escape_policy_fraction: 0.98,
                policy_fraction: 0.01,
                statement: "bounds".into(),
            },
            verdicts: vec![SignedVerdict::sign(job_id, MerkleRoot([5; 32]), Verdict::Approved, "ok", &verifier)],
            fraud_proof: None,
            commit_signature: Signature([8; 64]),
            response_end: SignedResponseEnd { c_digest: [9; 32], signature: Signature([10; 64]) },
            spec: s,
        }
    }

    #[test]
    fn receipts_round_trip_and_bad_fields_are_named() {
        let r = receipt();
        assert_eq!(decode_receipt(&encode_receipt(&r)).unwrap(), r);
        let good = pb::Receipt::from(&r);
        let cases: Vec<Mutation<pb::Receipt>> = vec![
            ("version", Box::new(|p| p.version = 3)),
            ("spec", Box::new(|p| p.spec = None)),
            ("spec.r_a", Box::new(|p| p.spec.as_mut().unwrap().r_a.push(1))),
            ("consumer_signature", Box::new(|p| p.consumer_signature.pop().map(drop).unwrap_or(()))),
            ("r_c", Box::new(|p| p.r_c.clear())),
            ("challenge", Box::new(|p| p.challenge = None)),
            ("challenge.seed", Box::new(|p| p.challenge.as_mut().unwrap().seed.push(0))),
            ("challenge.verifier_signature", Box::new(|p| p.challenge.as_mut().unwrap().verifier_signature.clear())),
            ("openings[1].proof", Box::new(|p| p.openings[1].proof.clear())),
            ("summary", Box::new(|p| p.summary = None)),
            ("summary.mode", Box::new(|p| p.summary.as_mut().unwrap().mode = 7)),
            ("summary.policy_fraction", Box::new(|p| p.summary.as_mut().unwrap().policy_fraction = f64::NAN)),
            ("summary.statement", Box::new(|p| p.summary.as_mut().unwrap().statement = "x".repeat(5000))),
            ("verdicts", Box::new(|p| p.verdicts.clear())),
            ("verdicts[0].verdict", Box::new(|p| p.verdicts[0].verdict = 0)),
            ("verdicts[0].reason", Box::new(|p| p.verdicts[0].reason = "x".repeat(MAX_REASON_BYTES + 1))),
            ("verdicts[0].r_c", Box::new(|p| p.verdicts[0].r_c.clear())),
            ("fraud_proof.a_path", Box::new(|p| p.fraud_proof = Some(pb::FraudProof::default()))),
            ("commit_signature", Box::new(|p| p.commit_signature.clear())),
            ("response_end", Box::new(|p| p.response_end = None)),
            ("response_end.c_digest", Box::new(|p| p.response_end.as_mut().unwrap().c_digest.push(0))),
            (
                "response_end.provider_signature",
                Box::new(|p| p.response_end.as_mut().unwrap().provider_signature.truncate(63)),
            ),
        ];
        for (field, mutate) in cases {
            let mut p = good.clone();
            mutate(&mut p);
            let err = Receipt::try_from(&p).unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
        assert!(matches!(decode_receipt(&[0xff; 3]), Err(ReceiptDecodeError::Protobuf { .. })));
    }

    #[test]
    fn a_version_1_receipt_is_refused_by_its_version() {
        use prost::Message;
        let mut old = pb::Receipt::from(&receipt());
        old.version = 1;
        old.commit_signature.clear();
        old.response_end = None;
        let err = decode_receipt(&old.encode_to_vec()).unwrap_err();
        assert_eq!(err, ReceiptDecodeError::Version { found: 1, expected: RECEIPT_VERSION });
        assert!(err.to_string().contains("version 1"), "{err}");
        assert!(err.to_string().contains("no provider commit and response signatures"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            if let Ok(p) = pb::JobSpec::decode(bytes.as_slice()) {
                let _ = JobSpec::try_from(&p);
            }
            if let Ok(o) = pb::TileOpening::decode(bytes.as_slice()) {
                let _ = TileOpening::try_from(&o);
            }
            if let Ok(f) = pb::FraudProof::decode(bytes.as_slice()) {
                let _ = FraudProof::try_from(&f);
            }
            let _ = decode_receipt(&bytes);
        }
    }
}
