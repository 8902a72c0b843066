//! The verifier node end to end over real gRPC on loopback (DESIGN §4, §6, §7): an honest
//! job is approved and paid exactly once; every cheat is rejected, nothing is paid, the
//! consumer is refunded and the stake slashed where a fraud proof exists; forged messages
//! move nothing; concurrent identical responses settle once; a node killed between verdict
//! and settlement releases exactly once after a restart (feature `fault-injection`).
//!
//! Every scenario runs on SQLite, and also on PostgreSQL (a fresh schema) when
//! `MATPROOF_TEST_POSTGRES_URL` is set. The ledger's conservation check runs after each step.
#![allow(clippy::too_many_lines)] // long scenarios read top to bottom
#![cfg(feature = "service")]

mod support;

use std::time::Duration;

use matproof_protocol::identity::{Identity, PublicKey};
use matproof_protocol::ids::{MerkleRoot, VkHash};
use matproof_protocol::receipt::{PURPOSE_JOB, Verdict};
use matproof_protocol::spec::VerificationMode;
use matproof_protocol::wire::{self, pb};
use matproof_verifier::ledger::{Ledger, TransferState};
use matproof_verifier::service::accounts::{consumer_account, provider_account, stake_account};
use matproof_verifier::service::{NodeLimits, RunningNode};
use pb::verifier_client::VerifierClient;
use support::{
    Job, JobParams, Parties, client, commit, far, head_mut, keys, now_ms, open, respond, rows_mut, status, targets,
};
use tonic::Code;
use tonic::transport::Channel;

const M: usize = 8;
const K: usize = 16;
const N: usize = 6;
const SAMPLES: u32 = 3;
const PRICE: u64 = 1_000;
const SLASH: u64 = 2_500;
const CONSUMER_FUNDS: u64 = 10_000;
const STAKE: u64 = 5_000;

fn limits() -> NodeLimits {
    NodeLimits { rpc_timeout: Duration::from_secs(60), expiry_grace: Duration::from_secs(60), ..NodeLimits::default() }
}

async fn start_node(url: &str, identity_seed: [u8; 32]) -> RunningNode {
    support::start_node(url, Identity::from_seed(identity_seed), limits()).await
}

/// The parties of one job, with fresh keys and funded accounts.
async fn funded(ledger: &Ledger) -> Parties {
    let p = Parties::funded(ledger, CONSUMER_FUNDS, STAKE).await;
    conserved(ledger).await;
    p
}

async fn conserved(ledger: &Ledger) {
    ledger.conservation_check().await.expect("conservation");
}

async fn balances(ledger: &Ledger, consumer: &PublicKey, provider: &PublicKey) -> (u64, u64, u64) {
    (
        ledger.balance(&consumer_account(consumer)).await.unwrap(),
        ledger.balance(&provider_account(provider)).await.unwrap(),
        ledger.balance(&stake_account(provider)).await.unwrap(),
    )
}

/// How a provider cheats.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cheat {
    Honest,
    /// Commits to a C with one wrong entry.
    OneWrongEntry,
    /// Commits to a C whose every entry is off by one (every tile wrong).
    EveryTileWrong,
}

fn make_job(parties: &Parties, mode: VerificationMode, cheat: Cheat, deadline_unix_ms: u64) -> Job {
    let params =
        JobParams { m: M, k: K, n: N, mode, samples: SAMPLES, price: PRICE, slash_amount: SLASH, deadline_unix_ms };
    Job::with_c(parties, &params, |c| match cheat {
        Cheat::Honest => {}
        Cheat::OneWrongEntry => c[2 * N + 3] += 1,
        Cheat::EveryTileWrong => c.iter_mut().for_each(|v| *v += 1),
    })
}

async fn receipt(client: &mut VerifierClient<Channel>, job: &Job) -> matproof_protocol::receipt::Receipt {
    let r = client.get_receipt(pb::GetReceiptRequest { job_id: job.job_id().to_vec() }).await.expect("receipt");
    matproof_protocol::receipt::Receipt::try_from(&r.into_inner()).expect("receipt fields")
}

/// Runs a scenario on every target with a fresh node.
macro_rules! on_every_target {
    (|$node:ident, $client:ident, $ledger:ident| $body:block) => {
        for t in targets("node").await {
            eprintln!("-- {}", t.name);
            let $node = start_node(&t.url, rand::random()).await;
            #[allow(unused_mut)]
            let mut $client = client($node.url()).await;
            let $ledger = $node.ledger().clone();
            $body
            $node.shutdown().await;
            t.finish().await;
        }
    };
}

/// Expects the job rejected: nothing paid, the consumer refunded, the stake slashed iff
/// `slashed`.
/// The receipt carries the provider's commit signature over `job_id ‖ R_C` and its response
/// end over the receipt's openings.
fn provider_signed(r: &matproof_protocol::receipt::Receipt) {
    let job_id = r.spec.job_id();
    matproof_protocol::receipt::verify_commit(&r.spec.provider, &job_id, &r.r_c, &r.commit_signature)
        .expect("the provider's commit signature");
    r.response_end.verify(&r.spec.provider, &job_id, &r.r_c, &r.openings).expect("the provider's response end");
}

async fn assert_rejected_and_refunded(ledger: &Ledger, job: &Job, parties: &Parties, slashed: bool) {
    let (consumer, provider, stake) =
        balances(ledger, &parties.consumer.public_key(), &parties.provider.public_key()).await;
    assert_eq!(provider, 0, "nothing paid");
    if slashed {
        assert_eq!(consumer, CONSUMER_FUNDS + SLASH, "refunded, and the slash goes to the consumer");
        assert_eq!(stake, STAKE - SLASH);
    } else {
        assert_eq!(consumer, CONSUMER_FUNDS, "refunded");
        assert_eq!(stake, STAKE);
    }
    assert_eq!(ledger.transfer(&job.job_id()).await.unwrap().state, TransferState::Voided);
    conserved(ledger).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn honest_jobs_are_approved_and_paid_once() {
    on_every_target!(|node, client, ledger| {
        for mode in [VerificationMode::Full, VerificationMode::Succinct] {
            let parties = funded(&ledger).await;
            let job = make_job(&parties, mode, Cheat::Honest, far());
            open(&mut client, &job).await.expect("open");
            conserved(&ledger).await;
            // Idempotent: the same spec again answers the same job id and escrows once.
            open(&mut client, &job).await.expect("open again");
            let (consumer, _, _) =
                balances(&ledger, &parties.consumer.public_key(), &parties.provider.public_key()).await;
            assert_eq!(consumer, CONSUMER_FUNDS - PRICE);
            assert_eq!(status(&mut client, &job).await.state, "opened");
            let challenge = commit(&mut client, &job, &parties.provider, node.verifier_key()).await;
            // The same R_C again: the same challenge.
            let again = commit(&mut client, &job, &parties.provider, node.verifier_key()).await;
            assert_eq!(again, challenge);
            let st = status(&mut client, &job).await;
            assert_eq!((st.state.as_str(), st.escrow.as_str()), ("challenged", "pending"));
            assert_eq!(st.r_c, job.r_c().to_vec());
            assert_eq!(
                client.get_receipt(pb::GetReceiptRequest { job_id: job.job_id().to_vec() }).await.unwrap_err().code(),
                Code::NotFound
            );
            let openings = job.openings(&challenge, 2);
            let verdict = respond(&mut client, job.chunks(&openings, None, &parties.provider)).await.expect("respond");
            assert_eq!(verdict.verdict, Verdict::Approved, "{}", verdict.reason);
            assert_eq!(verdict.verifier_key, node.verifier_key());
            conserved(&ledger).await;
            let expect_paid = |b: (u64, u64, u64)| {
                assert_eq!(b, (CONSUMER_FUNDS - PRICE, PRICE, STAKE), "paid exactly once");
            };
            expect_paid(balances(&ledger, &parties.consumer.public_key(), &parties.provider.public_key()).await);
            // A repeat response: the stored verdict, no second payment.
            let repeat = respond(&mut client, job.chunks(&openings, None, &parties.provider)).await.expect("repeat");
            assert_eq!(repeat, verdict);
            expect_paid(balances(&ledger, &parties.consumer.public_key(), &parties.provider.public_key()).await);
            let st = status(&mut client, &job).await;
            assert_eq!((st.state.as_str(), st.escrow.as_str()), ("approved", "posted"));
            let r = receipt(&mut client, &job).await;
            assert_eq!(r.spec, job.spec);
            assert_eq!(r.verdicts, vec![verdict]);
            assert_eq!(r.openings, openings);
            assert!(r.fraud_proof.is_none());
            r.challenge.verify().unwrap();
            assert_eq!(r.summary, matproof_verifier::check_summary(&job.spec).unwrap());
            // The receipt's checks re-run offline.
            let pinned = matproof_circuits::PinnedVerifyingKey::new(keys().1.clone(), &job.spec.vk_hash).unwrap();
            matproof_verifier::check_sampled_tiles(&r.spec, &r.r_c, &r.challenge.challenge, &r.openings, &pinned)
                .unwrap();
            // The node kept the provider's commit and response signatures: the whole audit
            // passes, provider signatures included.
            provider_signed(&r);
            let report = matproof_verifier::audit(&r, &matproof_verifier::AuditKeys::new(vec![keys().1.clone()]), None)
                .expect("the node's receipt audits");
            assert!(report.check("provider-signatures").unwrap().passed());
            conserved(&ledger).await;
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrong_entry_in_full_mode_is_proven_and_slashed() {
    on_every_target!(|node, client, ledger| {
        let parties = funded(&ledger).await;
        let job = make_job(&parties, VerificationMode::Full, Cheat::OneWrongEntry, far());
        open(&mut client, &job).await.expect("open");
        let challenge = commit(&mut client, &job, &parties.provider, node.verifier_key()).await;
        let verdict = respond(&mut client, job.chunks(&job.openings(&challenge, 2), None, &parties.provider))
            .await
            .expect("respond");
        assert_eq!(verdict.verdict, Verdict::Rejected);
        assert!(verdict.reason.contains("Freivalds"), "{}", verdict.reason);
        let r = receipt(&mut client, &job).await;
        // The rejection rests on the provider's own signatures, not on the verifier's word.
        provider_signed(&r);
        let report = matproof_verifier::audit(&r, &matproof_verifier::AuditKeys::new(vec![keys().1.clone()]), None)
            .expect("the node's rejection audits");
        assert!(matches!(report.rejection, Some(matproof_verifier::audit::RejectionGrounds::FraudProven { .. })));
        let proof = r.fraud_proof.expect("a fraud proof");
        assert_eq!((proof.row, proof.col), (2, 3));
        matproof_verifier::check_fraud_proof(&job.spec, &job.r_c(), &proof).expect("the fraud proof checks");
        assert_rejected_and_refunded(&ledger, &job, &parties, true).await;
        assert_eq!(status(&mut client, &job).await.state, "rejected");
        // A repeat response slashes nothing more.
        let repeat =
            respond(&mut client, job.chunks(&job.openings(&challenge, 2), None, &parties.provider)).await.unwrap();
        assert_eq!(repeat, verdict);
        assert_rejected_and_refunded(&ledger, &job, &parties, true).await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cheats_are_rejected_and_refunded() {
    on_every_target!(|node, client, ledger| {
        // A wrong tile in succinct mode: the sampled proofs fail.
        let parties = funded(&ledger).await;
        let job = make_job(&parties, VerificationMode::Succinct, Cheat::EveryTileWrong, far());
        open(&mut client, &job).await.unwrap();
        let challenge = commit(&mut client, &job, &parties.provider, node.verifier_key()).await;
        let v = respond(&mut client, job.chunks(&job.openings(&challenge, 2), None, &parties.provider)).await.unwrap();
        assert_eq!(v.verdict, Verdict::Rejected);
        assert!(v.reason.contains("sampled tiles"), "{}", v.reason);
        assert!(receipt(&mut client, &job).await.fraud_proof.is_none());
        assert_rejected_and_refunded(&ledger, &job, &parties, false).await;

        // Full mode: the streamed C does not match the committed R_C.
        let parties = funded(&ledger).await;
        let job = make_job(&parties, VerificationMode::Full, Cheat::Honest, far());
        open(&mut client, &job).await.unwrap();
        let challenge = commit(&mut client, &job, &parties.provider, node.verifier_key()).await;
        let mut c = job.committed.execution.c.as_slice().to_vec();
        c[7] ^= 1;
        let v =
            respond(&mut client, job.chunks(&job.openings(&challenge, 2), Some(&c), &parties.provider)).await.unwrap();
        assert_eq!(v.verdict, Verdict::Rejected);
        assert!(v.reason.contains("R_C"), "{}", v.reason);
        assert_rejected_and_refunded(&ledger, &job, &parties, false).await;

        // A proof replayed from another job (same data, another challenge).
        let parties = funded(&ledger).await;
        let donor = make_job(&parties, VerificationMode::Succinct, Cheat::Honest, far());
        open(&mut client, &donor).await.unwrap();
        let donor_challenge = commit(&mut client, &donor, &parties.provider, node.verifier_key()).await;
        let donor_openings = donor.openings(&donor_challenge, 2);
        let job = make_job(&parties, VerificationMode::Succinct, Cheat::Honest, far());
        open(&mut client, &job).await.unwrap();
        let challenge = commit(&mut client, &job, &parties.provider, node.verifier_key()).await;
        let mut openings = job.openings(&challenge, 2);
        for (o, d) in openings.iter_mut().zip(&donor_openings) {
            o.proof = d.proof.clone();
        }
        let v = respond(&mut client, job.chunks(&openings, None, &parties.provider)).await.unwrap();
        assert_eq!(v.verdict, Verdict::Rejected, "replayed proofs");
        let (consumer, provider, _) =
            balances(&ledger, &parties.consumer.public_key(), &parties.provider.public_key()).await;
        assert_eq!((consumer, provider), (CONSUMER_FUNDS - PRICE, 0), "the donor job is still pending");
        conserved(&ledger).await;
        // The donor itself is honest and still gets paid.
        let v = respond(&mut client, donor.chunks(&donor_openings, None, &parties.provider)).await.unwrap();
        assert_eq!(v.verdict, Verdict::Approved);
        let (consumer, provider, _) =
            balances(&ledger, &parties.consumer.public_key(), &parties.provider.public_key()).await;
        assert_eq!((consumer, provider), (CONSUMER_FUNDS - PRICE, PRICE));
        conserved(&ledger).await;

        // Garbage proof bytes (the right length).
        let parties = funded(&ledger).await;
        let job = make_job(&parties, VerificationMode::Succinct, Cheat::Honest, far());
        open(&mut client, &job).await.unwrap();
        let challenge = commit(&mut client, &job, &parties.provider, node.verifier_key()).await;
        let mut openings = job.openings(&challenge, 2);
        openings[1].proof = vec![0x5a; openings[1].proof.len()];
        let v = respond(&mut client, job.chunks(&openings, None, &parties.provider)).await.unwrap();
        assert_eq!(v.verdict, Verdict::Rejected, "garbage proof");
        assert_rejected_and_refunded(&ledger, &job, &parties, false).await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_commitment_per_job() {
    on_every_target!(|node, client, ledger| {
        let parties = funded(&ledger).await;
        let job = make_job(&parties, VerificationMode::Succinct, Cheat::Honest, far());
        open(&mut client, &job).await.unwrap();
        let challenge = commit(&mut client, &job, &parties.provider, node.verifier_key()).await;
        let other = client.commit(job.commit_request(&parties.provider, MerkleRoot([0x77; 32]))).await.unwrap_err();
        assert_eq!(other.code(), Code::FailedPrecondition, "{other}");
        // The first challenge stands.
        assert_eq!(commit(&mut client, &job, &parties.provider, node.verifier_key()).await, challenge);
        assert_eq!(status(&mut client, &job).await.r_c, job.r_c().to_vec());

        // Racing first commits with different R_C: exactly one wins, and every answer for
        // the winner's R_C is the same challenge.
        let job = make_job(&parties, VerificationMode::Succinct, Cheat::Honest, far());
        open(&mut client, &job).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..16u8 {
            let mut c = client.clone();
            let r_c = if i % 2 == 0 { job.r_c() } else { MerkleRoot([i; 32]) };
            let req = job.commit_request(&parties.provider, r_c);
            tasks.push(tokio::spawn(async move { (r_c, c.commit(req).await) }));
        }
        let mut winners = std::collections::HashSet::new();
        let mut seeds = std::collections::HashSet::new();
        for t in tasks {
            let (r_c, result) = t.await.unwrap();
            if let Ok(ch) = result {
                let ch = ch.into_inner();
                assert_eq!(ch.r_c, r_c.to_vec());
                winners.insert(r_c);
                seeds.insert(ch.seed);
            }
        }
        assert_eq!(winners.len(), 1, "one R_C wins");
        assert_eq!(seeds.len(), 1, "one seed");
        conserved(&ledger).await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_messages_move_nothing() {
    on_every_target!(|node, client, ledger| {
        let parties = funded(&ledger).await;
        let job = make_job(&parties, VerificationMode::Full, Cheat::Honest, far());
        let before = balances(&ledger, &parties.consumer.public_key(), &parties.provider.public_key()).await;

        // OpenJob: signed by someone else, or not signed.
        let mut req = job.open_messages();
        head_mut(&mut req).consumer_signature =
            parties.provider.sign(PURPOSE_JOB, &job.spec.canonical_bytes()).0.to_vec();
        assert_eq!(client.open_job(tokio_stream::iter(req)).await.unwrap_err().code(), Code::Unauthenticated);
        let mut req = job.open_messages();
        head_mut(&mut req).consumer_signature = vec![0; 64];
        assert_eq!(client.open_job(tokio_stream::iter(req)).await.unwrap_err().code(), Code::Unauthenticated);
        let mut req = job.open_messages();
        head_mut(&mut req).consumer_signature.clear();
        let e = client.open_job(tokio_stream::iter(req)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().contains("consumer_signature"), "{e}");
        let e = client.get_job_status(pb::JobStatusRequest { job_id: job.job_id().to_vec() }).await.unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
        assert_eq!(balances(&ledger, &parties.consumer.public_key(), &parties.provider.public_key()).await, before);
        conserved(&ledger).await;

        // Bad fields are named; A that does not match R_A is refused (it could frame the
        // provider); an unknown key is refused.
        let mut req = job.open_messages();
        head_mut(&mut req).spec.as_mut().unwrap().r_a.pop();
        let e = client.open_job(tokio_stream::iter(req)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().contains("spec.r_a"), "{e}");
        let mut req = job.open_messages();
        let rows = rows_mut(&mut req, 0);
        let mut values = rows.values.to_vec();
        values[0] ^= 1;
        rows.values = values.into();
        let e = client.open_job(tokio_stream::iter(req)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().contains("rows (A)"), "{e}");
        let mut other = make_job(&parties, VerificationMode::Succinct, Cheat::Honest, far());
        other.spec.vk_hash = VkHash([3; 32]);
        other.spec_signature = parties.consumer.sign(PURPOSE_JOB, &other.spec.canonical_bytes());
        assert_eq!(client.open_job(other.open_request()).await.unwrap_err().code(), Code::FailedPrecondition);
        let mut poor = make_job(&parties, VerificationMode::Succinct, Cheat::Honest, far());
        poor.spec.price = CONSUMER_FUNDS + 1;
        poor.spec_signature = parties.consumer.sign(PURPOSE_JOB, &poor.spec.canonical_bytes());
        assert_eq!(client.open_job(poor.open_request()).await.unwrap_err().code(), Code::FailedPrecondition);
        assert_eq!(balances(&ledger, &parties.consumer.public_key(), &parties.provider.public_key()).await, before);
        conserved(&ledger).await;

        // Commit: signed by the consumer instead of the provider.
        open(&mut client, &job).await.unwrap();
        let e = client.commit(job.commit_request(&parties.consumer, job.r_c())).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
        assert_eq!(status(&mut client, &job).await.state, "opened");
        let challenge = commit(&mut client, &job, &parties.provider, node.verifier_key()).await;

        // ResponseEnd: signed by a third party, or garbage: refused, the job untouched.
        let openings = job.openings(&challenge, 2);
        let third = Identity::generate().unwrap();
        let e = respond(&mut client, job.chunks(&openings, None, &third)).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{e}");
        let mut chunks = job.chunks(&openings, None, &parties.provider);
        if let Some(pb::respond_chunk::Part::End(end)) = &mut chunks.last_mut().unwrap().part {
            end.provider_signature = vec![1; 64];
        }
        assert_eq!(respond(&mut client, chunks).await.unwrap_err().code(), Code::Unauthenticated);
        // The honest end signature replayed under other contents (an opening's proof
        // swapped, or one C entry changed): refused, since it covers the whole response.
        let honest = job.chunks(&openings, None, &parties.provider);
        let honest_end = honest.last().unwrap().clone();
        let mut chunks = honest.clone();
        let last_opening = chunks.len() - 2;
        if let Some(pb::respond_chunk::Part::Opening(o)) = &mut chunks[last_opening].part {
            o.proof = vec![7; o.proof.len()];
        }
        assert_eq!(respond(&mut client, chunks).await.unwrap_err().code(), Code::Unauthenticated);
        let mut c = job.committed.execution.c.as_slice().to_vec();
        c[0] = c[0].wrapping_add(1);
        let mut chunks = job.chunks(&openings, Some(&c), &parties.provider);
        *chunks.last_mut().unwrap() = honest_end;
        assert_eq!(respond(&mut client, chunks).await.unwrap_err().code(), Code::Unauthenticated);
        // A stream without its end, or with too many rows: refused, untouched.
        let mut chunks = job.chunks(&openings, None, &parties.provider);
        chunks.pop();
        assert_eq!(respond(&mut client, chunks).await.unwrap_err().code(), Code::InvalidArgument);
        let mut chunks = job.chunks(&openings, None, &parties.provider);
        chunks.insert(0, chunks[0].clone());
        assert_eq!(respond(&mut client, chunks).await.unwrap_err().code(), Code::InvalidArgument);
        let st = status(&mut client, &job).await;
        assert_eq!((st.state.as_str(), st.escrow.as_str()), ("challenged", "pending"));
        assert_eq!(
            balances(&ledger, &parties.consumer.public_key(), &parties.provider.public_key()).await,
            (before.0 - PRICE, 0, STAKE)
        );
        conserved(&ledger).await;
        // The honest provider is still paid.
        let v = respond(&mut client, job.chunks(&openings, None, &parties.provider)).await.unwrap();
        assert_eq!(v.verdict, Verdict::Approved, "{}", v.reason);
        assert_eq!(
            balances(&ledger, &parties.consumer.public_key(), &parties.provider.public_key()).await,
            (before.0 - PRICE, PRICE, STAKE)
        );
        conserved(&ledger).await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_response_is_rejected_and_refunded() {
    on_every_target!(|node, client, ledger| {
        let parties = funded(&ledger).await;
        let job = make_job(&parties, VerificationMode::Succinct, Cheat::Honest, now_ms() + 2_000);
        open(&mut client, &job).await.unwrap();
        let challenge = commit(&mut client, &job, &parties.provider, node.verifier_key()).await;
        let openings = job.openings(&challenge, 2);
        let wait = job.spec.policy.deadline_unix_ms.saturating_sub(now_ms()) + 200;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let v = respond(&mut client, job.chunks(&openings, None, &parties.provider)).await.unwrap();
        assert_eq!(v.verdict, Verdict::Rejected);
        assert!(v.reason.starts_with("deadline"), "{}", v.reason);
        assert_rejected_and_refunded(&ledger, &job, &parties, false).await;
        // Opening a job whose deadline has passed is refused.
        let late = make_job(&parties, VerificationMode::Succinct, Cheat::Honest, now_ms() - 1);
        assert_eq!(client.open_job(late.open_request()).await.unwrap_err().code(), Code::InvalidArgument);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_jobs_are_voided_by_the_node() {
    for t in targets("node").await {
        let limits = NodeLimits {
            expiry_grace: Duration::from_millis(100),
            expiry_interval: Duration::from_millis(100),
            ..limits()
        };
        let node = support::start_node(&t.url, Identity::generate().unwrap(), limits).await;
        let mut client = client(node.url()).await;
        let ledger = node.ledger().clone();
        let parties = funded(&ledger).await;
        let job = make_job(&parties, VerificationMode::Succinct, Cheat::Honest, now_ms() + 1_000);
        open(&mut client, &job).await.unwrap();
        let challenge = commit(&mut client, &job, &parties.provider, node.verifier_key()).await;
        let mut voided = false;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let st = status(&mut client, &job).await;
            if st.escrow == "voided" {
                assert_eq!(st.state, "expired");
                voided = true;
                break;
            }
        }
        assert!(voided, "the job was voided after its deadline");
        assert_rejected_and_refunded(&ledger, &job, &parties, false).await;
        // A response after expiry gets a signed rejection and moves nothing more.
        let v = respond(&mut client, job.chunks(&job.openings(&challenge, 2), None, &parties.provider)).await.unwrap();
        assert_eq!(v.verdict, Verdict::Rejected);
        assert_rejected_and_refunded(&ledger, &job, &parties, false).await;
        node.shutdown().await;
        t.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_identical_responses_settle_once() {
    on_every_target!(|node, client, ledger| {
        let parties = funded(&ledger).await;
        let job = make_job(&parties, VerificationMode::Full, Cheat::Honest, far());
        open(&mut client, &job).await.unwrap();
        let challenge = commit(&mut client, &job, &parties.provider, node.verifier_key()).await;
        let chunks = job.chunks(&job.openings(&challenge, 2), None, &parties.provider);
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let mut c = client.clone();
            let chunks = chunks.clone();
            tasks.push(tokio::spawn(async move { respond(&mut c, chunks).await }));
        }
        let mut verdicts = std::collections::HashSet::new();
        for t in tasks {
            let v = t.await.unwrap().expect("respond");
            assert_eq!(v.verdict, Verdict::Approved);
            verdicts.insert(v.signature.0.to_vec());
        }
        assert_eq!(verdicts.len(), 1, "one verdict");
        assert_eq!(
            balances(&ledger, &parties.consumer.public_key(), &parties.provider.public_key()).await,
            (CONSUMER_FUNDS - PRICE, PRICE, STAKE),
            "released exactly once"
        );
        conserved(&ledger).await;
    });
}

/// Decodes a receipt from the node's stored bytes format, to check it round-trips.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_round_trip_through_their_file_format() {
    on_every_target!(|node, client, ledger| {
        let parties = funded(&ledger).await;
        let job = make_job(&parties, VerificationMode::Succinct, Cheat::Honest, far());
        open(&mut client, &job).await.unwrap();
        let challenge = commit(&mut client, &job, &parties.provider, node.verifier_key()).await;
        respond(&mut client, job.chunks(&job.openings(&challenge, 2), None, &parties.provider)).await.unwrap();
        let r = receipt(&mut client, &job).await;
        assert_eq!(wire::decode_receipt(&wire::encode_receipt(&r)).unwrap(), r);
    });
}

/// The node, run as a child process by [`killed_between_verdict_and_settlement`]: serves
/// until killed when `MATPROOF_E2E_CHILD_DB` is set, does nothing otherwise.
#[test]
fn child_node_process() {
    let Ok(url) = std::env::var("MATPROOF_E2E_CHILD_DB") else { return };
    let seed: [u8; 32] = hex::decode(std::env::var("MATPROOF_E2E_CHILD_SEED").unwrap()).unwrap().try_into().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let node = start_node(&url, seed).await;
        println!("listening on {}", node.url());
        use std::io::Write;
        std::io::stdout().flush().unwrap();
        tokio::time::sleep(Duration::from_secs(600)).await;
    });
}

/// A child node process, killed (SIGKILL) when dropped.
#[cfg(feature = "fault-injection")]
struct ChildNode(std::process::Child);

#[cfg(feature = "fault-injection")]
impl ChildNode {
    fn kill(&mut self) {
        self.0.kill().expect("SIGKILL");
        self.0.wait().expect("reap");
    }
}

#[cfg(feature = "fault-injection")]
impl Drop for ChildNode {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(feature = "fault-injection")]
fn spawn_child(url: &str, seed: [u8; 32], pause_ms: Option<u64>) -> (ChildNode, String) {
    use std::io::BufRead;
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_node_process", "--nocapture", "--test-threads=1"])
        .env("MATPROOF_E2E_CHILD_DB", url)
        .env("MATPROOF_E2E_CHILD_SEED", hex::encode(seed))
        .stdout(std::process::Stdio::piped());
    match pause_ms {
        Some(ms) => cmd.env("MATPROOF_TEST_PAUSE_AFTER_VERDICT_MS", ms.to_string()),
        None => cmd.env_remove("MATPROOF_TEST_PAUSE_AFTER_VERDICT_MS"),
    };
    let mut child = ChildNode(cmd.spawn().expect("spawn the node"));
    let stdout = child.0.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().expect("the node printed its address").unwrap();
        // libtest prints "test child_node_process ... " on the same line.
        if let Some((_, url)) = line.split_once("listening on ") {
            break url.trim().to_string();
        }
    };
    // Keep draining the child's stdout so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

/// SIGKILL between the recorded verdict and the ledger's release; a restarted node on the
/// same database releases the job exactly once.
#[cfg(feature = "fault-injection")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_between_verdict_and_settlement() {
    for t in targets("node").await {
        eprintln!("-- {}", t.name);
        let seed: [u8; 32] = rand::random();
        let ledger = Ledger::open(&t.url).await.unwrap();
        let parties = funded(&ledger).await;
        let (mut child, url) = spawn_child(&t.url, seed, Some(120_000));
        let mut c = client(url).await;
        let job = make_job(&parties, VerificationMode::Full, Cheat::Honest, far());
        open(&mut c, &job).await.unwrap();
        conserved(&ledger).await;
        let challenge = commit(&mut c, &job, &parties.provider, Identity::from_seed(seed).public_key()).await;
        let chunks = job.chunks(&job.openings(&challenge, 2), None, &parties.provider);
        let mut c2 = c.clone();
        let pending = tokio::spawn(async move { respond(&mut c2, chunks).await });
        // Wait for the verdict to be recorded (the node then pauses before releasing).
        let mut recorded = false;
        for _ in 0..600 {
            let tr = ledger.transfer(&job.job_id()).await.unwrap();
            if tr.verdict.is_some() {
                assert_eq!(tr.state, TransferState::Pending, "paused before the release");
                recorded = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(recorded, "the verdict was recorded");
        child.kill();
        assert!(pending.await.unwrap().is_err(), "the killed node answered nothing");
        let tr = ledger.transfer(&job.job_id()).await.unwrap();
        assert_eq!(tr.state, TransferState::Pending, "nothing released before the kill");
        assert_eq!(
            balances(&ledger, &parties.consumer.public_key(), &parties.provider.public_key()).await,
            (CONSUMER_FUNDS - PRICE, 0, STAKE)
        );
        conserved(&ledger).await;

        // Restart on the same database: recovery releases the job, once.
        let (mut child, url) = spawn_child(&t.url, seed, None);
        assert_eq!(ledger.transfer(&job.job_id()).await.unwrap().state, TransferState::Posted);
        let paid = (CONSUMER_FUNDS - PRICE, PRICE, STAKE);
        assert_eq!(balances(&ledger, &parties.consumer.public_key(), &parties.provider.public_key()).await, paid);
        conserved(&ledger).await;
        let mut c = client(url).await;
        let v = respond(&mut c, job.chunks(&job.openings(&challenge, 2), None, &parties.provider)).await.unwrap();
        assert_eq!(v.verdict, Verdict::Approved);
        assert_eq!(status(&mut c, &job).await.state, "approved");
        assert_eq!(balances(&ledger, &parties.consumer.public_key(), &parties.provider.public_key()).await, paid);
        conserved(&ledger).await;
        // And once more after a second restart.
        child.kill();
        let (mut child, _url) = spawn_child(&t.url, seed, None);
        assert_eq!(balances(&ledger, &parties.consumer.public_key(), &parties.provider.public_key()).await, paid);
        conserved(&ledger).await;
        child.kill();
        ledger.close().await;
        t.finish().await;
    }
}
