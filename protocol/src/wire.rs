//! The protobuf wire format (`proto/matproof/v1/matproof.proto`) and its conversion to core
//! types. Only this module knows protobuf; every conversion from the wire validates every
//! field and names the one at fault, so a service can answer `INVALID_ARGUMENT: <field>`.

use crate::fraud::FraudProof;
use crate::identity::PublicKey;
use crate::limits::{MAX_K, MAX_MERKLE_PATH_LEN, MAX_TILE_SIDE};
use crate::merkle::{Digest, InclusionProof};
use crate::opening::{TILE_PROOF_BYTES, TileOpening};
use crate::spec::{JobSpec, Policy, SpecError, VerificationMode};
use crate::tiling::CircuitShape;
use crate::transcript::Challenge;

/// Generated protobuf messages (and, with feature `grpc`, the tonic service stubs).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/matproof.v1.rs"));
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

fn fixed32(field: &str, bytes: &[u8]) -> Result<[u8; 32], WireError> {
    bytes.try_into().map_err(|_| WireError::new(field, format!("{} bytes, expected 32", bytes.len())))
}

fn usize_field(field: &str, value: u64) -> Result<usize, WireError> {
    usize::try_from(value).map_err(|_| WireError::new(field, "too large"))
}

fn required<'a, T>(field: &str, value: &'a Option<T>) -> Result<&'a T, WireError> {
    value.as_ref().ok_or_else(|| WireError::new(field, "missing"))
}

/// A 32-byte job id, commitment or key from the wire.
pub fn digest_from_wire(field: &str, bytes: &[u8]) -> Result<Digest, WireError> {
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

#[cfg(test)]
mod tests {
    use super::*;
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
            if let Ok(pb::Receipt { spec: Some(s), .. }) = pb::Receipt::decode(bytes.as_slice()) {
                let _ = JobSpec::try_from(&s);
            }
        }
    }
}
