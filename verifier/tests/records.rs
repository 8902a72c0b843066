//! Provider records over real gRPC, on SQLite and (with `MATPROOF_TEST_POSTGRES_URL`)
//! PostgreSQL, from two nodes sharing the database: a provider with 3 approved jobs, 1
//! rejected with a fraud proof and 1 expired shows exactly those counts, the amounts the
//! ledger moved and the score the formula gives; the record is recomputed from the ledger
//! and compared; `ListProviders` ranks by score and pages; bad requests get clear statuses.

mod support;

use std::time::Duration;

use matproof_protocol::identity::Identity;
use matproof_protocol::receipt::Verdict;
use matproof_protocol::records::{JobCounts, ProviderRecord, score, wilson_lower_bound};
use matproof_protocol::spec::VerificationMode;
use matproof_protocol::wire::pb;
use matproof_verifier::ledger::{Ledger, TransferState};
use matproof_verifier::service::accounts::{provider_account, stake_account};
use matproof_verifier::service::{NodeLimits, RunningNode};
use pb::verifier_client::VerifierClient;
use support::{Job, JobParams, Parties, client, commit, far, now_ms, open, respond, status, targets};
use tonic::Code;
use tonic::transport::Channel;

const PRICE: u64 = 1_000;
const SLASH: u64 = 2_500;
const STAKE: u64 = 5_000;

fn limits() -> NodeLimits {
    NodeLimits {
        rpc_timeout: Duration::from_secs(60),
        expiry_grace: Duration::from_millis(100),
        expiry_interval: Duration::from_millis(100),
        ..NodeLimits::default()
    }
}

fn params(mode: VerificationMode, deadline_unix_ms: u64) -> JobParams {
    JobParams { m: 6, k: 16, n: 4, mode, samples: 2, price: PRICE, slash_amount: SLASH, deadline_unix_ms }
}

/// Opens `job` on `opener`, then commits and responds on `judge` (nodes are stateless over
/// their shared database); the verdict.
async fn run(
    opener: &mut VerifierClient<Channel>,
    judge: (&mut VerifierClient<Channel>, &RunningNode),
    job: &Job,
    provider: &Identity,
) -> Verdict {
    open(opener, job).await.expect("open");
    let (client, node) = judge;
    let challenge = commit(client, job, provider, node.verifier_key()).await;
    let chunks = job.chunks(&job.openings(&challenge, 2), None, provider);
    respond(client, chunks).await.expect("respond").verdict
}

/// Waits until the node's expiry timer has voided `job`.
async fn wait_expired(client: &mut VerifierClient<Channel>, job: &Job) {
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if status(client, job).await.escrow == "voided" {
            return;
        }
    }
    panic!("the job was not voided after its deadline");
}

async fn record(client: &mut VerifierClient<Channel>, provider: &Identity) -> ProviderRecord {
    let request = pb::ProviderRecordRequest { provider: provider.public_key().0.to_vec() };
    let wire = client.get_provider_record(request).await.expect("GetProviderRecord").into_inner();
    ProviderRecord::try_from(&wire).expect("the record checks")
}

/// The provider's five jobs: three approved (one judged on the second node), one proven
/// fraud, one expired.
async fn five_jobs(
    a: (&mut VerifierClient<Channel>, &RunningNode),
    b: (&mut VerifierClient<Channel>, &RunningNode),
    parties: &Parties,
) -> Vec<Job> {
    let (ca, na) = a;
    let (cb, nb) = b;
    let mut jobs = Vec::new();
    for judged_on_b in [false, false, true] {
        let job = Job::new(parties, &params(VerificationMode::Full, far()));
        let mut opener = ca.clone();
        let judge = if judged_on_b { (&mut *cb, nb) } else { (&mut *ca, na) };
        let verdict = run(&mut opener, judge, &job, &parties.provider).await;
        assert_eq!(verdict, Verdict::Approved);
        jobs.push(job);
    }
    let fraud = Job::with_c(parties, &params(VerificationMode::Full, far()), |c| c[5] += 1);
    assert_eq!(run(&mut ca.clone(), (&mut *ca, na), &fraud, &parties.provider).await, Verdict::Rejected);
    jobs.push(fraud);
    let late = Job::new(parties, &params(VerificationMode::Succinct, now_ms() + 1_000));
    open(ca, &late).await.expect("open");
    wait_expired(ca, &late).await;
    jobs.push(late);
    jobs
}

/// The record recomputed from the ledger alone: each job's transfer state, the provider's
/// balances.
async fn check_against_ledger(ledger: &Ledger, jobs: &[Job], record: &ProviderRecord) {
    let mut posted = 0;
    for job in jobs {
        posted += u64::from(ledger.transfer(&job.job_id()).await.unwrap().state == TransferState::Posted);
    }
    assert_eq!(posted, record.counts.approved);
    let provider = &record.provider;
    assert_eq!(ledger.balance(&provider_account(provider)).await.unwrap(), record.earned);
    assert_eq!(STAKE - ledger.balance(&stake_account(provider)).await.unwrap(), record.slashed);
    ledger.conservation_check().await.expect("conservation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_count_what_the_ledger_and_the_nodes_hold() {
    for t in targets("records").await {
        eprintln!("-- {}", t.name);
        let node_a = support::start_node(&t.url, Identity::generate().unwrap(), limits()).await;
        let node_b = support::start_node(&t.url, Identity::generate().unwrap(), limits()).await;
        let (mut a, mut b) = (client(node_a.url()).await, client(node_b.url()).await);
        let ledger = node_a.ledger().clone();
        let parties = Parties::funded(&ledger, 10 * PRICE, STAKE).await;
        let jobs = five_jobs((&mut a, &node_a), (&mut b, &node_b), &parties).await;

        let expected =
            JobCounts { opened: 5, approved: 3, rejected_fraud: 1, rejected_other: 0, expired: 1, in_flight: 0 };
        let from_a = record(&mut a, &parties.provider).await;
        assert_eq!(from_a.counts, expected, "{}", t.name);
        assert_eq!((from_a.earned, from_a.slashed), (3 * PRICE, SLASH));
        // 3 successes of 3 + 1 + 5·1 = 9 weighted trials.
        assert_eq!(from_a.score, wilson_lower_bound(3.0, 9.0));
        assert!((from_a.score - 0.120_583_8).abs() < 1e-6, "{}", from_a.score);
        assert_eq!(from_a.open_to_commit.jobs, 4, "the expired job never committed");
        assert_eq!(from_a.challenge_to_verdict.jobs, 4);
        assert!(from_a.open_to_commit.median_ms <= from_a.open_to_commit.p95_ms);
        assert!(from_a.first_seen_unix_ms <= from_a.last_seen_unix_ms && from_a.last_seen_unix_ms <= now_ms());
        check_against_ledger(&ledger, &jobs, &from_a).await;
        assert_eq!(record(&mut b, &parties.provider).await, from_a, "both nodes answer the same record");

        // A second provider with one approved job ranks above (1 of 1 beats 3 of 9).
        let other = Parties::funded(&ledger, 10 * PRICE, 0).await;
        let job = Job::new(&other, &params(VerificationMode::Full, far()));
        assert_eq!(run(&mut a.clone(), (&mut b, &node_b), &job, &other.provider).await, Verdict::Approved);
        let page = a.list_providers(pb::ListProvidersRequest { page_size: 10, offset: 0 }).await.unwrap().into_inner();
        assert_eq!(page.total, 2);
        let listed: Vec<ProviderRecord> = page.providers.iter().map(|r| ProviderRecord::try_from(r).unwrap()).collect();
        assert_eq!(
            listed.iter().map(|r| r.provider).collect::<Vec<_>>(),
            [other.provider.public_key(), parties.provider.public_key()]
        );
        assert_eq!(listed[0].score, score(&listed[0].counts));
        assert_eq!(listed[1], record(&mut a, &parties.provider).await);
        let second = a.list_providers(pb::ListProvidersRequest { page_size: 1, offset: 1 }).await.unwrap().into_inner();
        assert_eq!(second.providers.len(), 1);
        assert_eq!(second.providers[0].provider, parties.provider.public_key().0.to_vec());

        bad_requests(&mut a).await;
        node_a.shutdown().await;
        node_b.shutdown().await;
        t.finish().await;
    }
}

async fn bad_requests(client: &mut VerifierClient<Channel>) {
    let unknown = pb::ProviderRecordRequest { provider: vec![9; 32] };
    let refused = client.get_provider_record(unknown).await.unwrap_err();
    assert_eq!(refused.code(), Code::NotFound, "{refused:?}");
    assert!(refused.message().contains("provider"), "{}", refused.message());
    let short = pb::ProviderRecordRequest { provider: vec![9; 31] };
    assert_eq!(client.get_provider_record(short).await.unwrap_err().code(), Code::InvalidArgument);
    for page_size in [0, 101] {
        let refused = client.list_providers(pb::ListProvidersRequest { page_size, offset: 0 }).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "page_size {page_size}");
        assert!(refused.message().contains("page_size"), "{}", refused.message());
    }
    let beyond = client.list_providers(pb::ListProvidersRequest { page_size: 5, offset: 1_000 }).await.unwrap();
    assert!(beyond.into_inner().providers.is_empty());
}
