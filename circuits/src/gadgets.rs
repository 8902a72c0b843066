//! R1CS gadgets over BN254 `Fr`.

use ark_bn254::Fr;
use ark_crypto_primitives::sponge::constraints::CryptographicSpongeVar;
use ark_crypto_primitives::sponge::poseidon::constraints::PoseidonSpongeVar;
use ark_r1cs_std::boolean::Boolean;
use ark_r1cs_std::convert::ToBitsGadget;
use ark_r1cs_std::fields::FieldVar;
use ark_r1cs_std::fields::fp::FpVar;
use ark_r1cs_std::uint8::UInt8;
use ark_relations::gr1cs::{ConstraintSystemRef, SynthesisError};
use matproof_protocol::poseidon::{BYTES_PER_ELEMENT, BlockKind, config};

/// A block's bytes inside the circuit: for each byte, its 8 range-checked bits of the
/// biased value (`byte + 128`, little-endian bit order).
pub struct ByteBlockVar {
    /// Little-endian bits of each biased byte.
    pub bits: Vec<Vec<Boolean<Fr>>>,
}

impl ByteBlockVar {
    /// Allocates `len` bytes as witnesses: 8 boolean bits each (one booleanity constraint per
    /// bit), so each byte is range-checked to `0..=255` after the bias. `values` is `None` in
    /// setup mode.
    pub fn new_witness(cs: ConstraintSystemRef<Fr>, values: Option<&[i8]>, len: usize) -> Result<Self, SynthesisError> {
        let biased: Vec<Option<u8>> = match values {
            Some(v) if v.len() == len => v.iter().map(|&b| Some((b as u8) ^ 0x80)).collect(),
            Some(_) => return Err(SynthesisError::Unsatisfiable),
            None => vec![None; len],
        };
        let bytes = UInt8::new_witness_vec(cs, &biased)?;
        let bits = bytes.iter().map(|byte| byte.to_bits_le()).collect::<Result<Vec<_>, _>>()?;
        Ok(Self { bits })
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.bits.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.bits.is_empty()
    }

    /// Byte `i` as its signed value (a linear combination of its bits, minus 128): no
    /// constraints.
    pub fn signed_value(&self, i: usize) -> Result<FpVar<Fr>, SynthesisError> {
        Ok(Boolean::le_bits_to_fp(&self.bits[i])? - Fr::from(128u64))
    }

    /// The bytes packed 31 per field element, little-endian, last element zero-filled
    /// (exactly `matproof_protocol::poseidon::pack_block`): linear combinations, no
    /// constraints.
    pub fn packed(&self) -> Result<Vec<FpVar<Fr>>, SynthesisError> {
        self.bits
            .chunks(BYTES_PER_ELEMENT)
            .map(|chunk| {
                let bits: Vec<Boolean<Fr>> = chunk.iter().flatten().cloned().collect();
                Boolean::le_bits_to_fp(&bits)
            })
            .collect()
    }
}

/// The Poseidon block digest of DESIGN §3 computed in the circuit; equal bit for bit to
/// `matproof_protocol::poseidon::block_digest`.
pub fn block_digest_var(
    cs: ConstraintSystemRef<Fr>,
    kind: BlockKind,
    side: usize,
    kc: usize,
    block: &ByteBlockVar,
) -> Result<FpVar<Fr>, SynthesisError> {
    let mut sponge = PoseidonSpongeVar::new(cs, config());
    let mut input = vec![
        FpVar::constant(kind.domain_tag()),
        FpVar::constant(Fr::from(side as u64)),
        FpVar::constant(Fr::from(kc as u64)),
    ];
    input.extend(block.packed()?);
    sponge.absorb(&input)?;
    let mut out = sponge.squeeze_field_elements(1)?;
    out.pop().ok_or(SynthesisError::Unsatisfiable)
}

/// `[1, x, x², …, x^(count−1)]`: `count − 2` constraints.
pub fn powers(x: &FpVar<Fr>, count: usize) -> Result<Vec<FpVar<Fr>>, SynthesisError> {
    let mut out = Vec::with_capacity(count);
    if count > 0 {
        out.push(FpVar::one());
    }
    if count > 1 {
        out.push(x.clone());
    }
    while out.len() < count {
        let next = out[out.len() - 1].clone() * x;
        out.push(next);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_r1cs_std::GR1CSVar;
    use ark_r1cs_std::alloc::AllocVar;
    use ark_relations::gr1cs::ConstraintSystem;
    use matproof_protocol::poseidon::{block_digest, pack_block};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn native_and_in_circuit_poseidon_agree(
            block in proptest::collection::vec(any::<i8>(), 0..100),
            side in 1usize..9,
            kc in 0usize..300,
            is_a in any::<bool>(),
        ) {
            let kind = if is_a { BlockKind::A } else { BlockKind::B };
            let cs = ConstraintSystem::<Fr>::new_ref();
            let var = ByteBlockVar::new_witness(cs.clone(), Some(&block), block.len()).unwrap();
            let packed: Vec<Fr> = var.packed().unwrap().iter().map(|v| v.value().unwrap()).collect();
            prop_assert_eq!(packed, pack_block(&block));
            let digest = block_digest_var(cs.clone(), kind, side, kc, &var).unwrap();
            prop_assert_eq!(digest.value().unwrap(), block_digest(kind, side, kc, &block));
            for (i, &byte) in block.iter().enumerate() {
                prop_assert_eq!(var.signed_value(i).unwrap().value().unwrap(), Fr::from(i64::from(byte)));
            }
            prop_assert!(cs.is_satisfied().unwrap());
        }
    }

    #[test]
    fn powers_are_powers() {
        let cs = ConstraintSystem::<Fr>::new_ref();
        let x = FpVar::new_witness(cs.clone(), || Ok(Fr::from(3u64))).unwrap();
        let p: Vec<Fr> = powers(&x, 5).unwrap().iter().map(|v| v.value().unwrap()).collect();
        assert_eq!(p, [1u64, 3, 9, 27, 81].map(Fr::from));
        assert_eq!(cs.num_constraints(), 3);
    }
}
