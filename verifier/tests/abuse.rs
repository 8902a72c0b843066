//! Abuse of one verifier node over real gRPC on loopback (issue #6, item 5): a message one
//! byte over the node's limit, slow clients that never finish their `Respond` stream, and a
//! flood of `OpenJob`. Each is refused with a named status, the node's memory stays bounded,
//! the ledger stays conserved, and an honest job is still served. A burst of concurrent
//! `OpenJob`s opens exactly the free slots of `max_open_jobs` (on SQLite, and on PostgreSQL
//! in a fresh schema when `MATPROOF_TEST_POSTGRES_URL` is set).
#![cfg(feature = "service")]

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use matproof_circuits::{TileProvingKey, TileVerifyingKey, development_setup};
use matproof_protocol::identity::{Identity, Signature};
use matproof_protocol::matrix::random_i8;
use matproof_protocol::opening::TileOpening;
use matproof_protocol::receipt::{
    PURPOSE_COMMIT, PURPOSE_JOB, PURPOSE_RESPOND, ResponseHasher, SignedChallenge, SignedVerdict, Verdict,
    job_commitment_bytes, respond_signing_bytes,
};
use matproof_protocol::spec::{JobSpec, Policy, VerificationMode};
use matproof_protocol::tiling::{CircuitShape, Tiling};
use matproof_protocol::transcript::Challenge;
use matproof_protocol::wire::pb;
use matproof_prover::{CommittedJob, CpuBackend, execute};
use matproof_verifier::ledger::{Ledger, TransferState};
use matproof_verifier::service::accounts::{consumer_account, provider_account};
use matproof_verifier::service::{NodeConfig, NodeLimits, RunningNode, start};
use pb::verifier_client::VerifierClient;
use prost::Message;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sqlx::{Connection, Executor};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::Channel;

const SHAPE: CircuitShape = CircuitShape { tm: 2, tn: 2, kc: 16 };
const M: usize = 4;
const K: usize = 16;
const N: usize = 4;
const SAMPLES: u32 = 2;
const PRICE: u64 = 10;

fn keys() -> &'static (TileProvingKey, TileVerifyingKey) {
    static KEYS: OnceLock<(TileProvingKey, TileVerifyingKey)> = OnceLock::new();
    KEYS.get_or_init(|| development_setup(SHAPE, &mut ChaCha20Rng::seed_from_u64(7)).expect("setup"))
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn vm_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

struct Node {
    node: RunningNode,
    _dir: tempfile::TempDir,
}

async fn start_node(limits: NodeLimits) -> Node {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = start_node_at(&format!("sqlite://{}?mode=rwc", dir.path().join("node.db").display()), limits).await;
    Node { node, _dir: dir }
}

async fn start_node_at(url: &str, limits: NodeLimits) -> RunningNode {
    start(NodeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: url.to_string(),
        identity: Identity::generate().unwrap(),
        verifying_keys: vec![keys().1.clone()],
        limits,
    })
    .await
    .expect("start node")
}

/// One database to run a scenario against.
struct Target {
    name: &'static str,
    url: String,
    _dir: Option<tempfile::TempDir>,
    schema: Option<(String, String)>,
}

impl Target {
    async fn finish(self) {
        if let Some((base, schema)) = &self.schema {
            let mut c = sqlx::PgConnection::connect(base).await.expect("connect to PostgreSQL");
            c.execute(format!("DROP SCHEMA {schema} CASCADE").as_str()).await.expect("drop schema");
        }
    }
}

/// SQLite in a temp dir, and PostgreSQL in a fresh schema when
/// `MATPROOF_TEST_POSTGRES_URL` is set.
async fn targets() -> Vec<Target> {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("node.db").display());
    let mut out = vec![Target { name: "sqlite", url, _dir: Some(dir), schema: None }];
    if let Ok(base) = std::env::var("MATPROOF_TEST_POSTGRES_URL") {
        let schema = format!("mp_abuse_{:016x}", rand::random::<u64>());
        let mut c = sqlx::PgConnection::connect(&base).await.expect("connect to PostgreSQL");
        c.execute(format!("CREATE SCHEMA {schema}").as_str()).await.expect("create schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options[search_path]={schema}");
        out.push(Target { name: "postgres", url, _dir: None, schema: Some((base, schema)) });
    }
    out
}

async fn client(url: String) -> VerifierClient<Channel> {
    VerifierClient::connect(url)
        .await
        .expect("connect")
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

/// A funded consumer and a provider.
struct Parties {
    consumer: Identity,
    provider: Identity,
}

async fn funded(ledger: &Ledger, jobs: u64) -> Parties {
    let p = Parties { consumer: Identity::generate().unwrap(), provider: Identity::generate().unwrap() };
    ledger.deposit(&consumer_account(&p.consumer.public_key()), PRICE * jobs).await.unwrap();
    p
}

fn spec(parties: &Parties, r_a: [u8; 32], r_b: [u8; 32]) -> JobSpec {
    JobSpec {
        m: M as u64,
        k: K as u64,
        n: N as u64,
        shape: SHAPE,
        r_a,
        r_b,
        vk_hash: keys().1.hash(),
        policy: Policy {
            mode: VerificationMode::Succinct,
            samples: SAMPLES,
            freivalds_rounds: 0,
            quorum: 1,
            target_fraud_ppm: 100_000,
            deadline_unix_ms: now_ms() + 3_600_000,
        },
        price: PRICE,
        slash_amount: 0,
        consumer: parties.consumer.public_key(),
        provider: parties.provider.public_key(),
        nonce: rand::random::<[u8; 16]>().to_vec(),
    }
}

fn open_request(spec: &JobSpec, signature: Signature) -> pb::OpenJobRequest {
    pb::OpenJobRequest {
        spec: Some(spec.into()),
        consumer_signature: signature.0.to_vec(),
        a_npy: Vec::new(),
        b_npy: Vec::new(),
    }
}

/// An honest succinct job: real matrices, committed C.
struct Job {
    spec: JobSpec,
    committed: CommittedJob,
}

impl Job {
    fn new(parties: &Parties) -> Job {
        let tiling = Tiling::new(M, K, N, SHAPE).unwrap();
        let seed = rand::random::<u64>();
        let a = random_i8(M, K, seed).unwrap();
        let b = random_i8(K, N, seed ^ 0xb).unwrap();
        let vectors = Challenge { job_id: [0; 32], r_c: [0; 32], seed: [9; 32] }.freivalds_vectors(2, N).unwrap();
        let execution = execute(&CpuBackend::best(), &tiling, &a, &b, &vectors).unwrap();
        let committed = CommittedJob::new(tiling, a, b, execution).unwrap();
        let spec = spec(parties, committed.a_tree.root(), committed.b_tree.root());
        Job { spec, committed }
    }

    fn id(&self) -> [u8; 32] {
        self.spec.job_id()
    }

    fn r_c(&self) -> [u8; 32] {
        self.committed.execution.c_tree.root()
    }

    fn open_request(&self, parties: &Parties) -> pb::OpenJobRequest {
        open_request(&self.spec, parties.consumer.sign(PURPOSE_JOB, &self.spec.canonical_bytes()))
    }

    async fn open_and_commit(&self, c: &mut VerifierClient<Channel>, parties: &Parties) -> Vec<TileOpening> {
        c.open_job(self.open_request(parties)).await.expect("open");
        let sig = parties.provider.sign(PURPOSE_COMMIT, &job_commitment_bytes(&self.id(), &self.r_c()));
        let req = pb::CommitRequest {
            job_id: self.id().to_vec(),
            r_c: self.r_c().to_vec(),
            provider_signature: sig.0.to_vec(),
        };
        let challenge = SignedChallenge::try_from(&c.commit(req).await.expect("commit").into_inner()).unwrap();
        self.committed.respond(&keys().0, &challenge.challenge, SAMPLES as usize, 1).expect("prove")
    }

    fn chunks(&self, openings: &[TileOpening], provider: &Identity) -> Vec<pb::RespondChunk> {
        let part = |part| pb::RespondChunk { job_id: self.id().to_vec(), part: Some(part) };
        let mut hasher = ResponseHasher::new(&self.id(), &self.r_c(), 0, openings.len() as u64);
        let mut out = Vec::new();
        for o in openings {
            hasher.opening(o);
            out.push(part(pb::respond_chunk::Part::Opening(o.into())));
        }
        let sig = provider.sign(PURPOSE_RESPOND, &respond_signing_bytes(&self.id(), &self.r_c(), &hasher.finish()));
        out.push(part(pb::respond_chunk::Part::End(pb::ResponseEnd { provider_signature: sig.0.to_vec() })));
        out
    }

    async fn respond(
        &self,
        c: &mut VerifierClient<Channel>,
        openings: &[TileOpening],
        provider: &Identity,
    ) -> Result<SignedVerdict, tonic::Status> {
        let v = c.respond(tokio_stream::iter(self.chunks(openings, provider))).await?.into_inner();
        let v = SignedVerdict::try_from(&v).expect("verdict fields");
        v.verify().expect("verdict signature");
        Ok(v)
    }

    async fn status(&self, c: &mut VerifierClient<Channel>) -> pb::JobStatus {
        c.get_job_status(pb::JobStatusRequest { job_id: self.id().to_vec() }).await.expect("status").into_inner()
    }
}

/// Open, commit, prove, respond: approved, and the escrow posted.
async fn honest_job(node: &RunningNode) {
    let ledger = node.ledger();
    let parties = funded(ledger, 1).await;
    let mut c = client(node.url()).await;
    let job = Job::new(&parties);
    let openings = job.open_and_commit(&mut c, &parties).await;
    let v = job.respond(&mut c, &openings, &parties.provider).await.expect("honest respond");
    assert_eq!(v.verdict, Verdict::Approved, "{}", v.reason);
    assert_eq!(ledger.transfer(&job.id()).await.unwrap().state, TransferState::Posted);
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

    // A valid succinct spec, padded with an `a_npy` (which succinct mode refuses) to an
    // exact encoded size.
    let job = Job::new(&parties);
    let sized = |size: usize| {
        let mut req = job.open_request(&parties);
        let mut pad = size - req.encoded_len();
        loop {
            req.a_npy = vec![0x55; pad];
            match req.encoded_len().cmp(&size) {
                std::cmp::Ordering::Equal => return req,
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
    assert_eq!(ledger.transfer(&job.id()).await.map(|t| t.state).ok(), None);
    c.open_job(job.open_request(&parties)).await.expect("the same job, unpadded");
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
    let (slow1, slow2, honest) = (Job::new(&parties), Job::new(&parties), Job::new(&parties));
    let openings1 = slow1.open_and_commit(&mut c, &parties).await;
    let openings2 = slow2.open_and_commit(&mut c, &parties).await;
    let openings_honest = honest.open_and_commit(&mut c, &parties).await;

    let hang = |job: &Job, openings: &[TileOpening]| {
        let first = job.chunks(openings, &parties.provider).remove(0);
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
    let v = honest.respond(&mut c, &openings_honest, &parties.provider).await.expect("served meanwhile");
    assert_eq!(v.verdict, Verdict::Approved, "{}", v.reason);
    assert!(!hung1.is_finished(), "the slow stream is still open");

    // Two hung streams hold both permits: a call with a short client deadline waits and ends.
    let hung2 = hang(&slow2, &openings2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut blocked = tonic::Request::new(pb::JobStatusRequest { job_id: slow1.id().to_vec() });
    blocked.set_timeout(Duration::from_millis(300));
    let e = c.get_job_status(blocked).await.expect_err("no permit free");
    assert!(matches!(e.code(), Code::Cancelled | Code::DeadlineExceeded), "{e:?}");

    for (hung, job) in [(hung1, &slow1), (hung2, &slow2)] {
        let (result, took) = hung.await.unwrap();
        let e = result.expect_err("timed out");
        assert!(matches!(e.code(), Code::Cancelled | Code::DeadlineExceeded), "{e:?}");
        assert!(took >= TIMEOUT - Duration::from_millis(500) && took < TIMEOUT * 3, "{took:?}");
        let s = job.status(&mut c).await;
        assert_eq!((s.state.as_str(), s.escrow.as_str()), ("challenged", "pending"), "untouched");
    }
    // Permits released: a whole honest job goes through, and a timed-out job can still be
    // answered honestly.
    honest_job(node).await;
    let v = slow1.respond(&mut c, &openings1, &parties.provider).await.expect("late but in time");
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
    let parties = funded(&ledger, 1).await;
    let honest = Job::new(&parties);
    let openings = honest.open_and_commit(&mut c, &parties).await;

    let flooder = funded(&ledger, (CONNECTIONS * PER_CONNECTION) as u64).await;
    let mut requests = Vec::new();
    for i in 0..CONNECTIONS * PER_CONNECTION {
        let s = spec(&flooder, rand::random(), rand::random());
        let mut sig = flooder.consumer.sign(PURPOSE_JOB, &s.canonical_bytes());
        if i % 2 == 0 {
            sig.0[7] ^= 1;
        }
        requests.push(open_request(&s, sig));
    }
    let rss_before = vm_kib("VmRSS:");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for batch in requests.chunks(PER_CONNECTION).map(|b| b.to_vec()) {
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
    let late = Job::new(&parties);
    let e = c.open_job(late.open_request(&parties)).await.expect_err("full");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    let v = honest.respond(&mut c, &openings, &parties.provider).await.expect("served after the flood");
    assert_eq!(v.verdict, Verdict::Approved, "{}", v.reason);
    assert_eq!(ledger.transfer(&honest.id()).await.unwrap().state, TransferState::Posted);
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
    for t in targets().await {
        eprintln!("-- {}", t.name);
        let limits = NodeLimits { max_open_jobs: MAX_OPEN, max_concurrent_rpcs: BURST, ..NodeLimits::default() };
        let node = start_node_at(&t.url, limits).await;
        let ledger = node.ledger().clone();
        let mut c = client(node.url()).await;

        // Before the burst: one job approved (no slot), one challenged, one opened (a slot each).
        let parties = funded(&ledger, 4).await;
        let judged = Job::new(&parties);
        let openings = judged.open_and_commit(&mut c, &parties).await;
        let v = judged.respond(&mut c, &openings, &parties.provider).await.expect("respond");
        assert_eq!(v.verdict, Verdict::Approved, "{}", v.reason);
        let challenged = Job::new(&parties);
        let challenged_openings = challenged.open_and_commit(&mut c, &parties).await;
        let opened = Job::new(&parties);
        c.open_job(opened.open_request(&parties)).await.expect("open");
        let free = (MAX_OPEN - 2) as usize;

        let flooder = funded(&ledger, BURST as u64).await;
        let requests: Vec<pb::OpenJobRequest> = (0..BURST)
            .map(|_| {
                let s = spec(&flooder, rand::random(), rand::random());
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
        let late = Job::new(&parties);
        let e = c.open_job(late.open_request(&parties)).await.expect_err("full");
        assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
        c.open_job(opened.open_request(&parties)).await.expect("the same spec again");
        // A judged job frees its slot: one more opens, and then none.
        let v = challenged.respond(&mut c, &challenged_openings, &parties.provider).await.expect("respond");
        assert_eq!(v.verdict, Verdict::Approved, "{}", v.reason);
        c.open_job(late.open_request(&parties)).await.expect("a freed slot");
        let again = Job::new(&parties);
        let e = c.open_job(again.open_request(&parties)).await.expect_err("full again");
        assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
        ledger.conservation_check().await.expect("conservation");
        node.shutdown().await;
        t.finish().await;
    }
}
