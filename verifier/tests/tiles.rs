//! Sampled-tile checks end to end, in process: an honest provider passes; each cheat is
//! rejected with the tile named.

use matproof_circuits::{PinnedVerifyingKey, TileProvingKey, TileVerifyingKey};
use matproof_protocol::ids::{MerkleRoot, Seed};
use matproof_protocol::opening::TileOpening;
use matproof_protocol::spec::{JobSpec, VerificationMode};
use matproof_protocol::tiling::CircuitShape;
use matproof_protocol::transcript::Challenge;
use matproof_prover::CommittedJob;
use matproof_testkit::{dev_keys, job_with_c, pinned as testkit_pinned, spec_of};
use matproof_verifier::{TileCheckError, check_sampled_tiles};

const SHAPE: CircuitShape = CircuitShape { tm: 2, tn: 2, kc: 16 };
const M: usize = 5;
const K: usize = 13;
const N: usize = 3;

fn keys() -> &'static (TileProvingKey, TileVerifyingKey) {
    dev_keys(SHAPE)
}

struct Setup {
    spec: JobSpec,
    job: CommittedJob,
    challenge: Challenge,
}

fn setup(samples: u32, corrupt_c: Option<usize>) -> Setup {
    // A cheating provider commits to a C with one wrong entry.
    let job = job_with_c(M, K, N, SHAPE, |c| {
        if let Some(pos) = corrupt_c {
            c[pos] += 1;
        }
    });
    let spec = spec_of(&job, VerificationMode::Succinct, samples);
    let challenge = Challenge { job_id: spec.job_id(), r_c: job.execution.c_tree.root(), seed: Seed([42; 32]) };
    Setup { spec, job, challenge }
}

fn pinned() -> PinnedVerifyingKey {
    testkit_pinned(SHAPE)
}

fn respond(s: &Setup) -> Vec<TileOpening> {
    s.job.respond(&keys().0, &s.challenge, s.spec.policy.samples as usize, 2).unwrap()
}

fn check(s: &Setup, openings: &[TileOpening]) -> Result<(), TileCheckError> {
    check_sampled_tiles(&s.spec, &s.challenge.r_c, &s.challenge, openings, &pinned()).map(|_| ())
}

#[test]
fn an_honest_provider_passes_with_stated_bounds() {
    let s = setup(4, None);
    let openings = respond(&s);
    let summary = check_sampled_tiles(&s.spec, &s.challenge.r_c, &s.challenge, &openings, &pinned()).unwrap();
    assert_eq!((summary.tiles, summary.samples), (6, 4));
    assert!((summary.escape_one_wrong_tile - (5.0f64 / 6.0).powi(4)).abs() < 1e-12);
    assert!((summary.escape_policy_fraction - 0.9f64.powi(4)).abs() < 1e-12);
}

#[test]
fn a_wrong_committed_tile_is_caught_when_sampled() {
    // Entry (4, 2) lies in tile (2, 1) = tile 5; sample all 6 tiles.
    let s = setup(6, Some(4 * N + 2));
    let openings = respond(&s);
    assert!(matches!(check(&s, &openings), Err(TileCheckError::Proof { tile: 5, .. })));
}

#[test]
fn tampered_openings_are_rejected() {
    let s = setup(4, None);
    let honest = respond(&s);
    check(&s, &honest).unwrap();

    let mut o = honest.clone();
    o[0].c_tile[0] += 1;
    assert!(matches!(check(&s, &o), Err(TileCheckError::Path { which: "C", .. })));

    let mut o = honest.clone();
    o.swap(0, 1);
    assert!(matches!(check(&s, &o), Err(TileCheckError::WrongTile { position: 0, .. })));

    assert!(matches!(check(&s, &honest[..3]), Err(TileCheckError::OpeningCount { .. })));

    let mut o = honest.clone();
    o[1].d_a[3] ^= 1;
    assert!(matches!(check(&s, &o), Err(TileCheckError::Path { which: "A", .. })));

    let mut o = honest.clone();
    o[2].b_path.path[0][0] ^= 1;
    assert!(matches!(check(&s, &o), Err(TileCheckError::Path { which: "B", .. })));

    let mut o = honest.clone();
    o[0].a_path.leaf_index ^= 1;
    assert!(matches!(check(&s, &o), Err(TileCheckError::Path { which: "A", .. })));

    let mut o = honest.clone();
    o[3].proof = vec![0xab; 128];
    assert!(matches!(check(&s, &o), Err(TileCheckError::Proof { .. })));

    let mut o = honest.clone();
    o[3].proof.truncate(100);
    assert!(matches!(check(&s, &o), Err(TileCheckError::Proof { .. })));

    // Two openings' proofs exchanged: each proof is valid, but for the other tile.
    let mut o = honest.clone();
    let p0 = o[0].proof.clone();
    o[0].proof = o[1].proof.clone();
    o[1].proof = p0;
    assert!(matches!(check(&s, &o), Err(TileCheckError::Proof { .. })));
}

#[test]
fn nonzero_padding_in_an_opened_tile_is_rejected() {
    // M = 5 with tm = 2: the last row block has one padding row. A provider that commits a
    // nonzero padding entry is refused on the padding check itself.
    let s = setup(6, None);
    let mut openings = respond(&s);
    let last = openings.iter_mut().find(|o| o.tile_index == 4).unwrap();
    last.c_tile[2] = 7; // local row 1 of row block 2 = global row 5: padding
    assert!(matches!(check(&s, &openings), Err(TileCheckError::NonZeroPadding { tile: 4, row: 1, col: 0, value: 7 })));
}

#[test]
fn a_proof_replayed_from_another_challenge_is_rejected() {
    let s = setup(6, None);
    let honest = respond(&s);
    // Same job, same commitment, another seed: same tiles (all 6 sampled), other σ, ρ.
    let other = Setup { challenge: Challenge { seed: Seed([43; 32]), ..s.challenge }, ..setup(6, None) };
    let replayed = respond(&other);
    let mut mixed = honest.clone();
    let position = mixed.iter().position(|o| o.tile_index == replayed[0].tile_index).unwrap();
    mixed[position].proof = replayed[0].proof.clone();
    assert!(matches!(check(&s, &mixed), Err(TileCheckError::Proof { .. })));
}

#[test]
fn the_wrong_key_or_challenge_is_refused() {
    let s = setup(4, None);
    let openings = respond(&s);
    let mut spec = s.spec.clone();
    spec.vk_hash.0[0] ^= 1;
    assert!(matches!(
        check_sampled_tiles(&spec, &s.challenge.r_c, &s.challenge, &openings, &pinned()),
        Err(TileCheckError::WrongKey { .. })
    ));
    let other_r_c = MerkleRoot([7u8; 32]);
    assert!(matches!(
        check_sampled_tiles(&s.spec, &other_r_c, &s.challenge, &openings, &pinned()),
        Err(TileCheckError::WrongChallenge)
    ));
}
