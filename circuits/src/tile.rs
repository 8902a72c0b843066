//! The `TileFreivalds(tm, tn, kc)` circuit (DESIGN §5.2).
//!
//! Public inputs `d_A(I), d_B(J), σ, ρ, z`; witness the bytes of `A_I` (`tm·kc`, row by row)
//! and `B_J` (`kc·tn`, column by column). Constraints: every byte is 8 boolean bits, the
//! packed bytes hash (Poseidon) to `d_A(I)` and `d_B(J)`, `s_i = σ^i`, `r_j = ρ^j`,
//! `u = sᵀ·A_I`, `v = B_J·r`, `z = u·v`.

use ark_bn254::Fr;
use ark_ff::Zero;
use ark_r1cs_std::alloc::AllocVar;
use ark_r1cs_std::eq::EqGadget;
use ark_r1cs_std::fields::fp::FpVar;
use ark_relations::gr1cs::{
    ConstraintSynthesizer, ConstraintSystem, ConstraintSystemRef, SynthesisError, SynthesisMode,
};
use matproof_protocol::poseidon::{BlockKind, block_digest};
use matproof_protocol::tiling::CircuitShape;

use crate::gadgets::{ByteBlockVar, block_digest_var, powers};

/// Number of public inputs.
pub const PUBLIC_INPUTS: usize = 5;

/// The public inputs of one tile proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TilePublicInputs {
    /// Poseidon digest of `A_I`.
    pub d_a: Fr,
    /// Poseidon digest of `B_J`.
    pub d_b: Fr,
    /// Row-combination challenge.
    pub sigma: Fr,
    /// Column-combination challenge.
    pub rho: Fr,
    /// `Σ_ij σ^i ρ^j C_IJ[i][j]`.
    pub z: Fr,
}

impl TilePublicInputs {
    /// In the circuit's order.
    pub fn to_vec(&self) -> Vec<Fr> {
        vec![self.d_a, self.d_b, self.sigma, self.rho, self.z]
    }
}

/// The private inputs of one tile proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileWitness {
    /// `A_I`: `tm·kc` bytes, row by row, zero-padded.
    pub a_block: Vec<i8>,
    /// `B_J`: `kc·tn` bytes, column by column, zero-padded.
    pub b_block: Vec<i8>,
}

impl TileWitness {
    /// The honest public inputs for this witness under `σ, ρ`: digests of the blocks and `z`
    /// of their product.
    pub fn public_inputs(&self, shape: CircuitShape, sigma: Fr, rho: Fr) -> TilePublicInputs {
        let tile = block_product(shape, &self.a_block, &self.b_block);
        TilePublicInputs {
            d_a: block_digest(BlockKind::A, shape.tm, shape.kc, &self.a_block),
            d_b: block_digest(BlockKind::B, shape.tn, shape.kc, &self.b_block),
            sigma,
            rho,
            z: tile_z(&tile, shape.tm, shape.tn, sigma, rho),
        }
    }
}

/// `A_I·B_J` as a `tm × tn` row-major tile (B_J column by column).
pub fn block_product(shape: CircuitShape, a_block: &[i8], b_block: &[i8]) -> Vec<i32> {
    let (tm, tn, kc) = (shape.tm, shape.tn, shape.kc);
    let mut out = vec![0i32; tm * tn];
    for i in 0..tm {
        for j in 0..tn {
            let a_row = &a_block[i * kc..(i + 1) * kc];
            let b_col = &b_block[j * kc..(j + 1) * kc];
            out[i * tn + j] =
                a_row.iter().zip(b_col).fold(0i32, |acc, (&x, &y)| acc.wrapping_add(i32::from(x) * i32::from(y)));
        }
    }
    out
}

/// `z = Σ_ij σ^i ρ^j tile[i][j]` in `Fr`, for a `tm × tn` row-major tile.
pub fn tile_z(tile: &[i32], tm: usize, tn: usize, sigma: Fr, rho: Fr) -> Fr {
    debug_assert_eq!(tile.len(), tm * tn);
    let mut z = Fr::zero();
    for row in tile.chunks(tn).take(tm).rev() {
        let mut row_value = Fr::zero();
        for &entry in row.iter().rev() {
            row_value = row_value * rho + Fr::from(i64::from(entry));
        }
        z = z * sigma + row_value;
    }
    z
}

/// The circuit. `witness` and `public` are `None` for key generation.
#[derive(Debug, Clone)]
pub struct TileFreivalds {
    /// The circuit shape.
    pub shape: CircuitShape,
    /// Private inputs.
    pub witness: Option<TileWitness>,
    /// Public inputs.
    pub public: Option<TilePublicInputs>,
}

impl TileFreivalds {
    /// The circuit for key generation (no assignment).
    pub fn for_setup(shape: CircuitShape) -> Self {
        Self { shape, witness: None, public: None }
    }
}

impl ConstraintSynthesizer<Fr> for TileFreivalds {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        let CircuitShape { tm, tn, kc } = self.shape;
        let public = self.public;
        let input = |f: fn(&TilePublicInputs) -> Fr| {
            FpVar::new_input(cs.clone(), move || public.as_ref().map(f).ok_or(SynthesisError::AssignmentMissing))
        };
        let d_a = input(|p| p.d_a)?;
        let d_b = input(|p| p.d_b)?;
        let sigma = input(|p| p.sigma)?;
        let rho = input(|p| p.rho)?;
        let z = input(|p| p.z)?;

        let witness = self.witness.as_ref();
        let a = ByteBlockVar::new_witness(cs.clone(), witness.map(|w| w.a_block.as_slice()), tm * kc)?;
        let b = ByteBlockVar::new_witness(cs.clone(), witness.map(|w| w.b_block.as_slice()), kc * tn)?;

        block_digest_var(cs.clone(), BlockKind::A, tm, kc, &a)?.enforce_equal(&d_a)?;
        block_digest_var(cs.clone(), BlockKind::B, tn, kc, &b)?.enforce_equal(&d_b)?;

        let s = powers(&sigma, tm)?;
        let r = powers(&rho, tn)?;
        // Sums are built as single linear combinations (`Sum` uses one LC for all terms),
        // which keeps synthesis and LC inlining cheap; each product is one constraint.
        let mut products = Vec::with_capacity(kc);
        for t in 0..kc {
            // u_t = Σ_i σ^i·A[i][t], v_t = Σ_j B[t][j]·ρ^j (B_J is stored column by column).
            let mut u_terms = vec![a.signed_value(t)?];
            for (i, s_i) in s.iter().enumerate().skip(1) {
                u_terms.push(s_i * a.signed_value(i * kc + t)?);
            }
            let mut v_terms = vec![b.signed_value(t)?];
            for (j, r_j) in r.iter().enumerate().skip(1) {
                v_terms.push(r_j * b.signed_value(j * kc + t)?);
            }
            let u_t: FpVar<Fr> = u_terms.iter().sum();
            let v_t: FpVar<Fr> = v_terms.iter().sum();
            products.push(u_t * v_t);
        }
        let z_computed: FpVar<Fr> = products.iter().sum();
        z_computed.enforce_equal(&z)
    }
}

/// The exact number of constraints of `TileFreivalds(shape)`, by synthesizing it in setup
/// mode (about `13·(tm + tn)·kc`).
pub fn constraint_count(shape: CircuitShape) -> Result<usize, SynthesisError> {
    let cs = ConstraintSystem::<Fr>::new_ref();
    cs.set_mode(SynthesisMode::Setup);
    TileFreivalds::for_setup(shape).generate_constraints(cs.clone())?;
    cs.finalize();
    Ok(cs.num_constraints())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ff::Field;
    use ark_relations::gr1cs::ConstraintSystem;
    use matproof_protocol::matrix::random_i8;

    fn witness(shape: CircuitShape, seed: u64) -> TileWitness {
        TileWitness {
            a_block: random_i8(1, shape.tm * shape.kc, seed).unwrap().into_vec(),
            b_block: random_i8(1, shape.kc * shape.tn, seed + 1).unwrap().into_vec(),
        }
    }

    fn satisfied(shape: CircuitShape, w: TileWitness, p: TilePublicInputs) -> bool {
        let cs = ConstraintSystem::<Fr>::new_ref();
        TileFreivalds { shape, witness: Some(w), public: Some(p) }.generate_constraints(cs.clone()).unwrap();
        cs.is_satisfied().unwrap()
    }

    #[test]
    fn honest_assignment_satisfies_and_lies_do_not() {
        let shape = CircuitShape { tm: 3, tn: 2, kc: 40 };
        let w = witness(shape, 1);
        let (sigma, rho) = (Fr::from(12345u64), Fr::from(777u64));
        let p = w.public_inputs(shape, sigma, rho);
        assert!(satisfied(shape, w.clone(), p));
        let mut bad = w.clone();
        bad.a_block[7] = bad.a_block[7].wrapping_add(1);
        assert!(!satisfied(shape, bad, p), "A byte differing from d_A");
        let mut bad = w.clone();
        bad.b_block[79] ^= 0x40;
        assert!(!satisfied(shape, bad, p), "B byte differing from d_B");
        assert!(!satisfied(shape, w.clone(), TilePublicInputs { z: p.z + Fr::from(1u64), ..p }), "wrong z");
        assert!(!satisfied(shape, w.clone(), TilePublicInputs { sigma: sigma + Fr::from(1u64), ..p }), "wrong σ");
        assert!(!satisfied(shape, w, TilePublicInputs { rho: rho + Fr::from(1u64), ..p }), "wrong ρ");
    }

    #[test]
    fn extreme_bytes_are_handled() {
        let shape = CircuitShape { tm: 2, tn: 2, kc: 33 };
        let w = TileWitness { a_block: vec![-128; 66], b_block: vec![127; 66] };
        let p = w.public_inputs(shape, Fr::from(2u64), Fr::from(3u64));
        assert!(satisfied(shape, w, p));
    }

    #[test]
    fn tile_z_matches_the_definition() {
        let tile = [1, -2, 3, 4, 5, -6];
        let (s, r) = (Fr::from(10u64), Fr::from(7u64));
        let mut expected = Fr::zero();
        for i in 0..2 {
            for j in 0..3 {
                expected += s.pow([i as u64]) * r.pow([j as u64]) * Fr::from(tile[i * 3 + j] as i64);
            }
        }
        assert_eq!(tile_z(&tile, 2, 3, s, r), expected);
    }

    #[test]
    fn constraint_count_stays_within_the_bound() {
        for shape in [
            CircuitShape { tm: 1, tn: 1, kc: 1 },
            CircuitShape { tm: 2, tn: 2, kc: 64 },
            CircuitShape { tm: 4, tn: 4, kc: 256 },
            CircuitShape { tm: 8, tn: 2, kc: 100 },
        ] {
            let count = constraint_count(shape).unwrap();
            let bound = 13.5 * ((shape.tm + shape.tn) * shape.kc) as f64 + 2000.0;
            assert!((count as f64) <= bound, "{shape:?}: {count} > {bound}");
        }
    }
}
