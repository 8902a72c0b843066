//! Abuse of one verifier node over real gRPC on loopback (issue #6, item 5): a message one
//! byte over the node's limit, slow clients that never finish their `Respond` stream, and a
//! flood of `OpenJob`. Each is refused with a named status, the node's memory stays bounded,
//! the ledger stays conserved, and an honest job is still served. A burst of concurrent
//! `OpenJob`s opens exactly the free slots of `max_open_jobs` (on SQLite, and on PostgreSQL
//! in a fresh schema when `MATPROOF_TEST_POSTGRES_URL` is set).
#![allow(clippy::too_many_lines)] // long scenarios read top to bottom
#![cfg(feature = "service")]

mod support;

use std::time::{Duration, Instant};

use matproof_protocol::identity::Identity;
use matproof_protocol::ids::MerkleRoot;
use matproof_protocol::opening::TileOpening;
use matproof_protocol::receipt::{PURPOSE_JOB, SignedVerdict, Verdict};
use matproof_protocol::spec::VerificationMode;
use matproof_protocol::wire::pb;
use matproof_verifier::ledger::{Ledger, TransferState};
use matproof_verifier::service::accounts::{consumer_account, provider_account};
use matproof_verifier::service::{NodeLimits, RunningNode};
use pb::verifier_client::VerifierClient;
use prost::Message;
use support::{
    Job, JobParams, Parties, Target, client, commit, far, open, open_request, respond, spec, status, targets, vm_kib,
};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::Channel;

const M: usize = 4;
const K: usize = 16;
const N: usize = 4;
const SAMPLES: u32 = 2;
const PRICE: u64 = 10;

/// Tiny succinct jobs.
fn params() -> JobParams {
    JobParams {
        m: M,
        k: K,
        n: N,
        mode: VerificationMode::Succinct,
        samples: SAMPLES,
        price: PRICE,
        slash_amount: 0,
        deadline_unix_ms: far(),
    }
}

/// A node on SQLite in its own temp dir (removed with it).
struct Node {
    node: RunningNode,
    _db: Target,
}

async fn start_node(limits: NodeLimits) -> Node {
    let db = Target::sqlite("node");
    let node = support::start_node(&db.url, Identity::generate().unwrap(), limits).await;
    Node { node, _db: db }
}

/// A consumer funded for `jobs` jobs, and a provider.
async fn funded(ledger: &Ledger, jobs: u64) -> Parties {
    Parties::funded(ledger, PRICE * jobs, 0).await
}

/// An honest job on real matrices.
fn new_job(parties: &Parties) -> Job {
    Job::new(parties, &params())
}

/// Opens and commits the job; the provider's openings for the challenge.
async fn open_and_commit(
    c: &mut VerifierClient<Channel>,
    node: &RunningNode,
    job: &Job,
    parties: &Parties,
) -> Vec<TileOpening> {
    open(c, job).await.expect("open");
    let challenge = commit(c, job, &parties.provider, node.verifier_key()).await;
    job.openings(&challenge, 1)
}

/// The provider's honest response.
async fn respond_with(
    c: &mut VerifierClient<Channel>,
    job: &Job,
    openings: &[TileOpening],
    provider: &Identity,
) -> Result<SignedVerdict, tonic::Status> {
    respond(c, job.chunks(openings, None, provider)).await
}

/// Open, commit, prove, respond: approved, and the escrow posted.
async fn honest_job(node: &RunningNode) {
    let ledger = node.ledger();
    let parties = funded(ledger, 1).await;
    let mut c = client(node.url()).await;
    let job = new_job(&parties);
    let openings = open_and_commit(&mut c, node, &job, &parties).await;
    let v = respond_with(&mut c, &job, &openings, &parties.provider).await.expect("honest respond");
    assert_eq!(v.verdict, Verdict::Approved, "{}", v.reason);
    assert_eq!(ledger.transfer(&job.job_id()).await.unwrap().state, TransferState::Posted);
    assert_eq!(ledger.balance(&provider_account(&parties.provider.public_key())).await.unwrap(), PRICE);
    ledger.conservation_check().await.expect("conservation");
}

/// (a) A message one byte over `max_message_bytes` is refused for its size
/// (`OUT_OF_RANGE`, from tonic's decoder) before any handler runs; one exactly at the limit
/// is decoded and judged on its contents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_one_byte_over_the_limit_is_refused_and_one_at_the_limit_is_not() {
    const LIMIT: usize = 64 * 1024;
    let node = start_node(NodeLimits { max_message_bytes: LIMIT, ..NodeLimits::default() }).await;
    let node = &node.node;
    let ledger = node.ledger();
    let parties = funded(ledger, 4).await;
    let mut c = client(node.url()).await;

    // A valid succinct spec, followed by a rows message (which succinct mode refuses) of an
    // exact encoded size.
    let job = new_job(&parties);
    let sized = |size: usize| {
        let mut pad = size;
        loop {
            let rows = pb::InputRows { operand: pb::Operand::A as i32, first_row: 0, values: vec![0x55; pad].into() };
            let message = pb::JobUpload { part: Some(pb::job_upload::Part::Rows(rows)) };
            match message.encoded_len().cmp(&size) {
                std::cmp::Ordering::Equal => {
                    let mut messages = job.open_messages();
                    messages.push(message);
                    return tokio_stream::iter(messages);
                }
                std::cmp::Ordering::Greater => pad -= 1,
                std::cmp::Ordering::Less => pad += 1,
            }
        }
    };
    let over = c.open_job(sized(LIMIT + 1)).await.expect_err("over the limit");
    assert_eq!(over.code(), Code::OutOfRange, "{over:?}");
    assert!(over.message().contains("too large"), "{over:?}");
    let at = c.open_job(sized(LIMIT)).await.expect_err("succinct mode takes no A");
    assert_eq!(at.code(), Code::InvalidArgument, "{at:?}");
    assert!(at.message().contains("succinct mode takes no A"), "{at:?}");

    // Nothing moved, and the same connection still serves an honest job.
    assert_eq!(ledger.transfer(&job.job_id()).await.map(|t| t.state).ok(), None);
    c.open_job(job.open_request()).await.expect("the same job, unpadded");
    ledger.conservation_check().await.expect("conservation");
    honest_job(node).await;
}

/// (b) Slow clients: a `Respond` stream that sends one chunk and then idles is ended by the
/// node's `rpc_timeout` (`CANCELLED`, tonic's server timeout), the job stays challenged with
/// its escrow pending, an honest job is served while one hangs, and the concurrency permits
/// held by hung streams are released when they time out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_timed_out_the_job_untouched_and_its_permit_released() {
    // Long enough for an honest response to be checked meanwhile (unoptimized builds are
    // slower at checking proofs).
    const TIMEOUT: Duration = Duration::from_secs(if cfg!(debug_assertions) { 10 } else { 3 });
    let node = start_node(NodeLimits { rpc_timeout: TIMEOUT, max_concurrent_rpcs: 2, ..NodeLimits::default() }).await;
    let node = &node.node;
    let ledger = node.ledger().clone();
    let mut c = client(node.url()).await;
    let parties = funded(&ledger, 3).await;
    let (slow1, slow2, honest) = (new_job(&parties), new_job(&parties), new_job(&parties));
    let openings1 = open_and_commit(&mut c, node, &slow1, &parties).await;
    let openings2 = open_and_commit(&mut c, node, &slow2, &parties).await;
    let openings_honest = open_and_commit(&mut c, node, &honest, &parties).await;

    let hang = |job: &Job, openings: &[TileOpening]| {
        let first = job.chunks(openings, None, &parties.provider).remove(0);
        let url = node.url();
        tokio::spawn(async move {
            let mut c = client(url).await;
            let started = Instant::now();
            let stream = tokio_stream::iter(vec![first]).chain(tokio_stream::pending());
            (c.respond(stream).await, started.elapsed())
        })
    };

    // One hung stream; the other permit serves an honest response meanwhile.
    let hung1 = hang(&slow1, &openings1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let v = respond_with(&mut c, &honest, &openings_honest, &parties.provider).await.expect("served meanwhile");
    assert_eq!(v.verdict, Verdict::Approved, "{}", v.reason);
    assert!(!hung1.is_finished(), "the slow stream is still open");

    // Two hung streams hold both permits: a call with a short client deadline waits and ends.
    let hung2 = hang(&slow2, &openings2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut blocked = tonic::Request::new(pb::JobStatusRequest { job_id: slow1.job_id().to_vec() });
    blocked.set_timeout(Duration::from_millis(300));
    let e = c.get_job_status(blocked).await.expect_err("no permit free");
    assert!(matches!(e.code(), Code::Cancelled | Code::DeadlineExceeded), "{e:?}");

    for (hung, job) in [(hung1, &slow1), (hung2, &slow2)] {
        let (result, took) = hung.await.unwrap();
        let e = result.expect_err("timed out");
        assert!(matches!(e.code(), Code::Cancelled | Code::DeadlineExceeded), "{e:?}");
        assert!(took >= TIMEOUT - Duration::from_millis(500) && took < TIMEOUT * 3, "{took:?}");
        let s = status(&mut c, job).await;
        assert_eq!((s.state.as_str(), s.escrow.as_str()), ("challenged", "pending"), "untouched");
    }
    // Permits released: a whole honest job goes through, and a timed-out job can still be
    // answered honestly.
    honest_job(node).await;
    let v = respond_with(&mut c, &slow1, &openings1, &parties.provider).await.expect("late but in time");
    assert_eq!(v.verdict, Verdict::Approved, "{}", v.reason);
    ledger.conservation_check().await.expect("conservation");
}

/// (c) A flood of 2,000 `OpenJob`s over 20 connections: half with a bad consumer signature
/// (`UNAUTHENTICATED`), half valid tiny jobs well beyond `max_open_jobs`
/// (`RESOURCE_EXHAUSTED` once full). Nothing else comes back, the process's resident memory
/// grows by less than 200 MiB, the ledger is conserved and escrows exactly the jobs opened,
/// and a job opened before the flood is still committed, answered and paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_open_jobs_is_refused_cleanly_with_memory_bounded() {
    const MAX_OPEN: u64 = 50;
    const CONNECTIONS: usize = 20;
    const PER_CONNECTION: usize = 100;
    let node = start_node(NodeLimits { max_open_jobs: MAX_OPEN, ..NodeLimits::default() }).await;
    let node = &node.node;
    let ledger = node.ledger().clone();
    let mut c = client(node.url()).await;

    // Opened before the flood, answered after it.
    let parties = funded(&ledger, 2).await;
    let honest = new_job(&parties);
    let openings = open_and_commit(&mut c, node, &honest, &parties).await;

    let flooder = funded(&ledger, (CONNECTIONS * PER_CONNECTION) as u64).await;
    let mut requests = Vec::new();
    for i in 0..CONNECTIONS * PER_CONNECTION {
        let s = spec(&flooder, &params(), MerkleRoot(rand::random()), MerkleRoot(rand::random()));
        let mut sig = flooder.consumer.sign(PURPOSE_JOB, &s.canonical_bytes());
        if i % 2 == 0 {
            sig.0[7] ^= 1;
        }
        requests.push(open_request(&s, sig));
    }
    let rss_before = vm_kib("VmRSS:");
    let started = Instant::now();
    let mut tasks = Vec::new();
    let mut requests = requests.into_iter();
    for batch in (0..CONNECTIONS).map(|_| requests.by_ref().take(PER_CONNECTION).collect::<Vec<_>>()) {
        let url = node.url();
        tasks.push(tokio::spawn(async move {
            let mut c = client(url).await;
            let mut codes = Vec::new();
            for req in batch {
                codes.push(match c.open_job(req).await {
                    Ok(_) => Code::Ok,
                    Err(e) => e.code(),
                });
            }
            codes
        }));
    }
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for t in tasks {
        for code in t.await.expect("flood task") {
            *counts.entry(format!("{code:?}")).or_default() += 1;
        }
    }
    let took = started.elapsed();
    let rss_after = vm_kib("VmRSS:");
    eprintln!(
        "flood: {} requests in {took:?}: {counts:?}; VmRSS {} -> {} KiB (+{} KiB)",
        CONNECTIONS * PER_CONNECTION,
        rss_before,
        rss_after,
        rss_after.saturating_sub(rss_before)
    );
    let get = |k: &str| counts.get(k).copied().unwrap_or(0);
    assert_eq!(get("Unauthenticated"), CONNECTIONS * PER_CONNECTION / 2, "{counts:?}");
    let opened = get("Ok");
    // A hard bound: exactly the free slots (one is taken by the job opened before).
    assert_eq!(opened as u64, MAX_OPEN - 1, "{counts:?}");
    assert_eq!(get("ResourceExhausted") + opened, CONNECTIONS * PER_CONNECTION / 2, "{counts:?}");
    assert!(rss_after.saturating_sub(rss_before) < 200 * 1024, "RSS grew {rss_before} -> {rss_after} KiB");

    ledger.conservation_check().await.expect("conservation");
    let left = ledger.balance(&consumer_account(&flooder.consumer.public_key())).await.unwrap();
    assert_eq!(left, PRICE * (CONNECTIONS * PER_CONNECTION - opened) as u64, "escrowed exactly the opened jobs");

    // Full: a new job is refused cleanly; the job opened before the flood is still served.
    let late = new_job(&parties);
    let e = c.open_job(late.open_request()).await.expect_err("full");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    let v = respond_with(&mut c, &honest, &openings, &parties.provider).await.expect("served after the flood");
    assert_eq!(v.verdict, Verdict::Approved, "{}", v.reason);
    assert_eq!(ledger.transfer(&honest.job_id()).await.unwrap().state, TransferState::Posted);
    ledger.conservation_check().await.expect("conservation");
}

/// (d) `max_open_jobs` is hard: a burst of valid `OpenJob`s, all in flight at once over
/// several connections, opens exactly the free slots and refuses every other one with
/// `RESOURCE_EXHAUSTED`; opened and challenged jobs take a slot, a judged one does not; the
/// same spec opened again while full is still answered; a judged job frees its slot. On
/// every target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_open_jobs_opens_exactly_the_free_slots() {
    const MAX_OPEN: u64 = 12;
    const CONNECTIONS: usize = 8;
    const BURST: usize = 160;
    for t in targets("abuse").await {
        eprintln!("-- {}", t.name);
        let limits = NodeLimits { max_open_jobs: MAX_OPEN, max_concurrent_rpcs: BURST, ..NodeLimits::default() };
        let node = support::start_node(&t.url, Identity::generate().unwrap(), limits).await;
        let ledger = node.ledger().clone();
        let mut c = client(node.url()).await;

        // Before the burst: one job approved (no slot), one challenged, one opened (a slot each).
        let parties = funded(&ledger, 5).await;
        let judged = new_job(&parties);
        let openings = open_and_commit(&mut c, &node, &judged, &parties).await;
        let v = respond_with(&mut c, &judged, &openings, &parties.provider).await.expect("respond");
        assert_eq!(v.verdict, Verdict::Approved, "{}", v.reason);
        let challenged = new_job(&parties);
        let challenged_openings = open_and_commit(&mut c, &node, &challenged, &parties).await;
        let opened = new_job(&parties);
        c.open_job(opened.open_request()).await.expect("open");
        let free = (MAX_OPEN - 2) as usize;

        // A consumer who cannot pay is refused before admission and takes no slot; one who can
        // pay for one job, opening 3 × MAX_OPEN at once, takes exactly one.
        let broke = Parties::funded(&ledger, PRICE - 1, 0).await;
        for _ in 0..3 * MAX_OPEN {
            let s = spec(&broke, &params(), MerkleRoot(rand::random()), MerkleRoot(rand::random()));
            let e = c
                .open_job(open_request(&s, broke.consumer.sign(PURPOSE_JOB, &s.canonical_bytes())))
                .await
                .expect_err("unfunded");
            assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
            assert!(e.message().contains("insufficient funds"), "{e:?}");
        }
        let one_job = funded(&ledger, 1).await;
        let mut opens = Vec::new();
        for _ in 0..3 * MAX_OPEN {
            let s = spec(&one_job, &params(), MerkleRoot(rand::random()), MerkleRoot(rand::random()));
            let req = open_request(&s, one_job.consumer.sign(PURPOSE_JOB, &s.canonical_bytes()));
            let mut c = c.clone();
            opens.push(tokio::spawn(async move { c.open_job(req).await.map(|_| ()) }));
        }
        let mut paid = 0;
        for open in opens {
            match open.await.expect("open task") {
                Ok(()) => paid += 1,
                Err(e) => assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}"),
            }
        }
        assert_eq!(paid, 1, "funds for one job open one job");
        let free = free - 1;

        let flooder = funded(&ledger, BURST as u64).await;
        let requests: Vec<support::OpenStream> = (0..BURST)
            .map(|_| {
                let s = spec(&flooder, &params(), MerkleRoot(rand::random()), MerkleRoot(rand::random()));
                open_request(&s, flooder.consumer.sign(PURPOSE_JOB, &s.canonical_bytes()))
            })
            .collect();
        let mut clients = Vec::new();
        for _ in 0..CONNECTIONS {
            clients.push(client(node.url()).await);
        }
        // Every request on its own task, released together.
        let gate = std::sync::Arc::new(tokio::sync::Barrier::new(BURST));
        let mut tasks = Vec::new();
        for (i, req) in requests.into_iter().enumerate() {
            let (mut c, gate) = (clients[i % CONNECTIONS].clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                gate.wait().await;
                c.open_job(req).await.map(|_| ())
            }));
        }
        let mut ok = 0usize;
        for task in tasks {
            match task.await.expect("burst task") {
                Ok(()) => ok += 1,
                Err(e) => {
                    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
                    assert!(e.message().contains("too many jobs awaiting a response"), "{e:?}");
                }
            }
        }
        eprintln!("{}: burst of {BURST}: {ok} opened, {} refused, {free} free slots", t.name, BURST - ok);
        assert_eq!(ok, free, "exactly the free slots are opened");
        let left = ledger.balance(&consumer_account(&flooder.consumer.public_key())).await.unwrap();
        assert_eq!(left, PRICE * (BURST - free) as u64, "escrowed exactly the opened jobs");
        ledger.conservation_check().await.expect("conservation");

        // Full: a new job is refused, the same spec again is still answered.
        let late = new_job(&parties);
        let e = c.open_job(late.open_request()).await.expect_err("full");
        assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
        c.open_job(opened.open_request()).await.expect("the same spec again");
        // A judged job frees its slot: one more opens, and then none.
        let v = respond_with(&mut c, &challenged, &challenged_openings, &parties.provider).await.expect("respond");
        assert_eq!(v.verdict, Verdict::Approved, "{}", v.reason);
        c.open_job(late.open_request()).await.expect("a freed slot");
        let again = new_job(&parties);
        let e = c.open_job(again.open_request()).await.expect_err("full again");
        assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
        ledger.conservation_check().await.expect("conservation");
        node.shutdown().await;
        t.finish().await;
    }
}
