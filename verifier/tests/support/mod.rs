//! Shared by the node and ledger tests (`e2e.rs`, `abuse.rs`, `ledger.rs`, each with
//! `mod support;`) and by `examples/load.rs` (with `#[path]`): the databases a scenario runs
//! on (SQLite in a temp dir, and PostgreSQL in a fresh schema when
//! `MATPROOF_TEST_POSTGRES_URL` is set), the development key, a node and a client over
//! loopback gRPC, funded parties, jobs (honest, or with a tampered `C`) and their messages.
#![allow(dead_code)] // each includer uses a part of it

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use matproof_circuits::{TileProvingKey, TileVerifyingKey};
use matproof_protocol::commit::c_tree;
use matproof_protocol::identity::{Identity, PublicKey, Signature};
use matproof_protocol::ids::{JobId, MerkleRoot, Seed};
use matproof_protocol::matrix::random_i8;
use matproof_protocol::opening::TileOpening;
use matproof_protocol::receipt::SignedVerdict;
use matproof_protocol::session::{self, ResponseExpectation, ResponseWriter, SharedInputs, SignedCommit, UploadWriter};
use matproof_protocol::spec::{JobSpec, Policy, VerificationMode};
use matproof_protocol::tiling::{CircuitShape, Tiling};
use matproof_protocol::transcript::Challenge;
use matproof_protocol::wire::pb;
use matproof_prover::{CommittedJob, CpuBackend, execute};
use matproof_verifier::ledger::Ledger;
use matproof_verifier::service::accounts::{consumer_account, stake_account};
use matproof_verifier::service::{NodeConfig, NodeLimits, RunningNode, start};
use pb::verifier_client::VerifierClient;
use sqlx::{Connection, Executor};
use tonic::transport::Channel;

/// The circuit shape of every job here (2×2 tiles, kc 16).
pub const SHAPE: CircuitShape = CircuitShape { tm: 2, tn: 2, kc: 16 };

/// The development key pair for [`SHAPE`] (seed 7), made once per process.
pub fn keys() -> &'static (TileProvingKey, TileVerifyingKey) {
    matproof_testkit::dev_keys(SHAPE)
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// A deadline an hour from now.
pub fn far() -> u64 {
    now_ms() + 3_600_000
}

/// A `/proc/self/status` field in KiB (`VmRSS:`, `VmHWM:`), 0 where there is none.
pub fn vm_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// One database to run a scenario against.
pub struct Target {
    /// `sqlite` or `postgres`.
    pub name: &'static str,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    /// PostgreSQL: (base URL, schema), dropped by [`Target::finish`].
    schema: Option<(String, String)>,
}

impl Target {
    /// SQLite in a fresh temp dir (`{stem}.db`), removed when dropped.
    pub fn sqlite(stem: &str) -> Target {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join(format!("{stem}.db")).display());
        Target { name: "sqlite", url, _dir: Some(dir), schema: None }
    }

    /// PostgreSQL at `base`, in a fresh schema `mp_{stem}_…` that [`Target::finish`] drops.
    pub async fn postgres(base: &str, stem: &str) -> Target {
        let schema = format!("mp_{stem}_{:016x}", rand::random::<u64>());
        let mut c = sqlx::PgConnection::connect(base).await.expect("connect to PostgreSQL");
        c.execute(format!("CREATE SCHEMA {schema}").as_str()).await.expect("create schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options[search_path]={schema}");
        Target { name: "postgres", url, _dir: None, schema: Some((base.to_string(), schema)) }
    }

    /// Opens the ledger on this database (running the migrations).
    pub async fn ledger(&self) -> Ledger {
        Ledger::open(&self.url).await.unwrap_or_else(|e| panic!("{}: open: {e}", self.name))
    }

    /// Drops the PostgreSQL schema (the SQLite temp dir goes with `self`).
    pub async fn finish(self) {
        if let Some((base, schema)) = &self.schema {
            let mut c = sqlx::PgConnection::connect(base).await.expect("connect to PostgreSQL");
            c.execute(format!("DROP SCHEMA {schema} CASCADE").as_str()).await.expect("drop schema");
        }
    }
}

/// SQLite, and PostgreSQL too when `MATPROOF_TEST_POSTGRES_URL` is set (`stem` names the
/// SQLite file and prefixes the schema).
pub async fn targets(stem: &str) -> Vec<Target> {
    let mut out = vec![Target::sqlite(stem)];
    if let Ok(base) = std::env::var("MATPROOF_TEST_POSTGRES_URL") {
        out.push(Target::postgres(&base, stem).await);
    }
    out
}

/// A node on `127.0.0.1:0` over `url`, holding [`keys`]' verifying key.
pub async fn start_node(url: &str, identity: Identity, limits: NodeLimits) -> RunningNode {
    start(NodeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: url.to_string(),
        identity,
        verifying_keys: vec![keys().1.clone()],
        limits,
        tls: Default::default(),
    })
    .await
    .expect("start node")
}

/// A client on its own connection, with 64 MiB message limits.
pub async fn client(url: String) -> VerifierClient<Channel> {
    VerifierClient::connect(url)
        .await
        .expect("connect")
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

/// The parties of a job, with fresh keys.
pub struct Parties {
    pub consumer: Identity,
    pub provider: Identity,
}

impl Parties {
    pub fn new() -> Parties {
        Parties { consumer: Identity::generate().unwrap(), provider: Identity::generate().unwrap() }
    }

    /// New parties, the consumer's account funded with `consumer_funds` and the provider's
    /// stake account with `stake` (no deposit where 0).
    pub async fn funded(ledger: &Ledger, consumer_funds: u64, stake: u64) -> Parties {
        let p = Parties::new();
        ledger.deposit(&consumer_account(&p.consumer.public_key()), consumer_funds).await.unwrap();
        if stake > 0 {
            ledger.deposit(&stake_account(&p.provider.public_key()), stake).await.unwrap();
        }
        p
    }
}

/// The size and terms of a job.
#[derive(Debug, Clone)]
pub struct JobParams {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub mode: VerificationMode,
    pub samples: u32,
    pub price: u64,
    pub slash_amount: u64,
    pub deadline_unix_ms: u64,
}

/// The spec of a job between `parties` on [`keys`]' key (Freivalds with 2 rounds in full
/// mode, quorum 1, a fresh nonce).
pub fn spec(parties: &Parties, p: &JobParams, r_a: MerkleRoot, r_b: MerkleRoot) -> JobSpec {
    JobSpec {
        m: p.m as u64,
        k: p.k as u64,
        n: p.n as u64,
        shape: SHAPE,
        r_a,
        r_b,
        vk_hash: keys().1.hash(),
        policy: Policy {
            mode: p.mode,
            input_scheme: matproof_protocol::spec::InputScheme::Poseidon,
            samples: p.samples,
            freivalds_rounds: if p.mode == VerificationMode::Full { 2 } else { 0 },
            quorum: 1,
            target_fraud_ppm: 100_000,
            deadline_unix_ms: p.deadline_unix_ms,
        },
        price: p.price,
        slash_amount: p.slash_amount,
        consumer: parties.consumer.public_key(),
        provider: parties.provider.public_key(),
        nonce: rand::random::<[u8; 16]>().to_vec(),
    }
}

/// An `OpenJob` upload as a stream, what `VerifierClient::open_job` takes.
pub type OpenStream = tokio_stream::Iter<std::vec::IntoIter<pb::JobUpload>>;

/// An `OpenJob` without A and B (succinct mode), under any signature.
pub fn open_request(spec: &JobSpec, signature: Signature) -> OpenStream {
    tokio_stream::iter(UploadWriter::new(spec, &signature, None).collect::<Vec<_>>())
}

/// The signed spec of an upload's messages (its first), to tamper with.
pub fn head_mut(messages: &mut [pb::JobUpload]) -> &mut pb::SignedSpec {
    match messages.first_mut().and_then(|m| m.part.as_mut()) {
        Some(pb::job_upload::Part::Spec(head)) => head,
        _ => panic!("an upload starts with its spec"),
    }
}

/// The `index`-th rows message of an upload, to tamper with.
pub fn rows_mut(messages: &mut [pb::JobUpload], index: usize) -> &mut pb::InputRows {
    let mut rows = messages.iter_mut().filter_map(|m| match m.part.as_mut() {
        Some(pb::job_upload::Part::Rows(r)) => Some(r),
        _ => None,
    });
    rows.nth(index).expect("the upload has that many rows messages")
}

/// A job's data on both sides: the consumer's signed spec and A, B; the provider's
/// committed C.
pub struct Job {
    pub spec: JobSpec,
    pub spec_signature: Signature,
    pub committed: CommittedJob,
    pub inputs: SharedInputs,
}

impl Job {
    /// An honest job on random A, B.
    pub fn new(parties: &Parties, p: &JobParams) -> Job {
        Job::with_c(parties, p, |_| {})
    }

    /// A job whose provider commits to the product changed by `tamper` (row-major `C`).
    pub fn with_c(parties: &Parties, p: &JobParams, tamper: impl FnOnce(&mut [i32])) -> Job {
        let tiling = Tiling::new(p.m, p.k, p.n, SHAPE).unwrap();
        let seed = rand::random::<u64>();
        let a = random_i8(p.m, p.k, seed).unwrap();
        let b = random_i8(p.k, p.n, seed ^ 0xb).unwrap();
        let vectors = Challenge { job_id: JobId([0; 32]), r_c: MerkleRoot([0; 32]), seed: Seed([9; 32]) }
            .freivalds_vectors(2, p.n)
            .unwrap();
        let mut execution = execute(&CpuBackend::best(), &tiling, &a, &b, &vectors).unwrap();
        tamper(execution.c.as_mut_slice());
        execution.c_tree = c_tree(&tiling, &execution.c).unwrap();
        let inputs = (Arc::new(a.clone()), Arc::new(b.clone()));
        let committed = CommittedJob::new(tiling, a, b, execution).unwrap();
        let spec = spec(parties, p, committed.a_tree.root(), committed.b_tree.root());
        let spec_signature = session::sign_spec(&spec, &parties.consumer);
        Job { spec, spec_signature, committed, inputs }
    }

    pub fn job_id(&self) -> JobId {
        self.spec.job_id()
    }

    pub fn r_c(&self) -> MerkleRoot {
        self.committed.execution.c_tree.root()
    }

    fn full(&self) -> bool {
        self.spec.policy.mode == VerificationMode::Full
    }

    /// The consumer's `OpenJob` messages (with A and B in full mode), to tamper with.
    pub fn open_messages(&self) -> Vec<pb::JobUpload> {
        let inputs = self.full().then(|| self.inputs.clone());
        UploadWriter::new(&self.spec, &self.spec_signature, inputs).collect()
    }

    /// The consumer's `OpenJob` upload.
    pub fn open_request(&self) -> OpenStream {
        tokio_stream::iter(self.open_messages())
    }

    /// A `Commit` of `r_c` signed by `provider`.
    pub fn commit_request(&self, provider: &Identity, r_c: MerkleRoot) -> pb::CommitRequest {
        pb::CommitRequest::from(&SignedCommit::sign(self.job_id(), r_c, provider))
    }

    /// The provider's openings and proofs of the sampled tiles, proved on `threads` threads.
    pub fn openings(&self, challenge: &Challenge, threads: usize) -> Vec<TileOpening> {
        self.committed.respond(&keys().0, challenge, self.spec.policy.samples as usize, threads).unwrap()
    }

    /// A response stream with three C rows a chunk: see [`Job::response`].
    pub fn chunks(&self, openings: &[TileOpening], c: Option<&[i32]>, end_signer: &Identity) -> Vec<pb::RespondChunk> {
        self.response(openings, c, end_signer, 3)
    }

    /// A whole response stream through the session's writer: `C` (full mode; the committed
    /// one unless `c` is given), `rows_per_chunk` rows a chunk, then the openings, then an
    /// end signed by `end_signer`.
    pub fn response(
        &self,
        openings: &[TileOpening],
        c: Option<&[i32]>,
        end_signer: &Identity,
        rows_per_chunk: usize,
    ) -> Vec<pb::RespondChunk> {
        let mut expect = ResponseExpectation::for_job(&self.spec, self.r_c());
        expect.openings = openings.len();
        let c = self.full().then(|| c.unwrap_or(self.committed.execution.c.as_slice()));
        ResponseWriter::whole(expect, c, openings, end_signer, rows_per_chunk)
    }
}

/// `OpenJob`; on success the node must answer the job's id.
pub async fn open(client: &mut VerifierClient<Channel>, job: &Job) -> Result<(), tonic::Status> {
    let resp = client.open_job(job.open_request()).await?.into_inner();
    assert_eq!(resp.job_id, job.job_id().to_vec());
    Ok(())
}

/// `Commit` of the job's `R_C` by `provider`; the challenge must be signed by `verifier` and
/// name this job and `R_C`.
pub async fn commit(
    client: &mut VerifierClient<Channel>,
    job: &Job,
    provider: &Identity,
    verifier: PublicKey,
) -> Challenge {
    let pb_challenge = client.commit(job.commit_request(provider, job.r_c())).await.expect("commit").into_inner();
    let signed = session::read_challenge(&pb_challenge, &job.job_id(), &job.r_c()).expect("challenge");
    assert_eq!(signed.verifier_key, verifier);
    signed.challenge
}

/// `Respond` with `chunks`; a verdict must carry a valid signature.
pub async fn respond(
    client: &mut VerifierClient<Channel>,
    chunks: Vec<pb::RespondChunk>,
) -> Result<SignedVerdict, tonic::Status> {
    let v = client.respond(tokio_stream::iter(chunks)).await?.into_inner();
    let v = SignedVerdict::try_from(&v).expect("verdict fields");
    v.verify().expect("verdict signature");
    Ok(v)
}

pub async fn status(client: &mut VerifierClient<Channel>, job: &Job) -> pb::JobStatus {
    client.get_job_status(pb::JobStatusRequest { job_id: job.job_id().to_vec() }).await.expect("status").into_inner()
}
