//! The result reaches the consumer (DESIGN §4), over real gRPC on loopback: a verifier node
//! (SQLite), a prover sidecar and, between the consumer and that sidecar, a proxy that
//! passes the upload on and then tampers with the result. Jobs here are full mode with
//! `samples = 0` (no tile proofs, `sha256` input commitments), so no keys are needed.
//!
//! - An honest job: the consumer's `C` is `A·B`, bit for bit; `job open --out` writes it.
//! - One entry of the streamed `C` changed, or the stream cut before its end: the client
//!   refuses it naming the job (and both roots for a changed entry); the CLI exits 1 and
//!   writes no output file.
//! - A job over the node's disk budget is refused up front (`RESOURCE_EXHAUSTED`), nothing
//!   stored; the audit of a `samples = 0` receipt exits 2 without data and passes with it.
#![allow(clippy::too_many_lines)] // scenarios read top to bottom

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use matproof_client::{ClientError, JobTerms, consumer_spec, open_job, submit_job};
use matproof_protocol::identity::Identity;
use matproof_protocol::ids::VkHash;
use matproof_protocol::matrix::{MatrixI8, naive_product, random_i8};
use matproof_protocol::session::SharedInputs;
use matproof_protocol::tiling::CircuitShape;
use matproof_protocol::wire::pb;
use matproof_prover::sidecar::{RunningSidecar, SidecarConfig};
use matproof_testkit::full_mode_policy;
use matproof_verifier::service::accounts::consumer_account;
use matproof_verifier::service::{NodeConfig, NodeLimits, RunningNode};
use pb::prover_sidecar_server::{ProverSidecar, ProverSidecarServer};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

const SHAPE: CircuitShape = CircuitShape { tm: 4, tn: 4, kc: 24 };
const FUNDS: u64 = 10_000;

/// What the proxy does to the result on its way to the consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tamper {
    /// Passes it on unchanged.
    Nothing,
    /// Adds 1 to the first entry of `C`.
    OneEntry,
    /// Drops the end: the stream stops before it.
    Cut,
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    tamper: Tamper,
}

type Replies = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::SubmitJobReply, Status>> + Send>>;

#[tonic::async_trait]
impl ProverSidecar for Proxy {
    type SubmitJobStream = Replies;

    async fn submit_job(&self, request: Request<Streaming<pb::JobUpload>>) -> Result<Response<Replies>, Status> {
        let upload: Vec<pb::JobUpload> = request.into_inner().collect::<Result<_, _>>().await?;
        let mut client = pb::prover_sidecar_client::ProverSidecarClient::connect(self.upstream.clone())
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let mut replies: Vec<pb::SubmitJobReply> =
            client.submit_job(tokio_stream::iter(upload)).await?.into_inner().collect::<Result<_, _>>().await?;
        match self.tamper {
            Tamper::Nothing => {}
            Tamper::OneEntry => {
                let rows = replies.iter_mut().find_map(|r| match r.part.as_mut() {
                    Some(pb::submit_job_reply::Part::CRows(rows)) => Some(rows),
                    _ => None,
                });
                let rows = rows.expect("an approved job streams C");
                let mut values = rows.values.to_vec();
                values[0] ^= 1;
                rows.values = values.into();
            }
            Tamper::Cut => {
                replies.pop();
            }
        }
        Ok(Response::new(Box::pin(tokio_stream::iter(replies.into_iter().map(Ok)))))
    }
}

/// A node, a sidecar, and proxies in front of the sidecar.
struct Net {
    _dir: tempfile::TempDir,
    node: RunningNode,
    sidecar: RunningSidecar,
    consumer: Identity,
    consumer_seed: [u8; 32],
}

impl Net {
    async fn start(limits: NodeLimits) -> Net {
        let dir = tempfile::tempdir().unwrap();
        let node = matproof_verifier::service::start(NodeConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: format!("sqlite://{}?mode=rwc", dir.path().join("node.db").display()),
            identity: Identity::generate().unwrap(),
            verifying_keys: Vec::new(),
            limits,
            tls: Default::default(),
        })
        .await
        .unwrap();
        let consumer_seed = [21; 32];
        let consumer = Identity::from_seed(consumer_seed);
        node.ledger().deposit(&consumer_account(&consumer.public_key()), FUNDS).await.unwrap();
        let mut config = SidecarConfig::new(node.url(), Identity::generate().unwrap(), Vec::new());
        config.verifier_key = Some(node.verifier_key());
        let sidecar = matproof_prover::sidecar::start(config).await.unwrap();
        Net { _dir: dir, node, sidecar, consumer, consumer_seed }
    }

    /// A proxy in front of the sidecar, serving until the test ends.
    async fn proxy(&self, tamper: Tamper) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let proxy = Proxy { upstream: self.sidecar.url(), tamper };
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(ProverSidecarServer::new(proxy))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        url
    }

    fn terms(&self) -> JobTerms {
        JobTerms {
            provider: self.sidecar.public_key(),
            shape: SHAPE,
            vk_hash: VkHash([0; 32]),
            policy: full_mode_policy(Duration::from_secs(600)),
            price: 100,
            slash_amount: 0,
        }
    }
}

fn inputs(seed: u64) -> SharedInputs {
    (Arc::new(random_i8(10, 21, seed).unwrap()), Arc::new(random_i8(21, 9, seed + 1).unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_gets_c_checked_and_refuses_a_changed_or_cut_result() {
    let net = Net::start(NodeLimits::default()).await;
    let terms = net.terms();

    // Honest, through an honest proxy: C is A·B exactly.
    let honest = net.proxy(Tamper::Nothing).await;
    let data = inputs(1);
    let (spec, signature) = consumer_spec(&net.consumer, &terms, &data.0, &data.1).unwrap();
    open_job(&net.node.url(), &spec, &signature, &data).await.unwrap();
    let submitted = submit_job(&honest, &spec, &signature, &data).await.unwrap();
    assert!(submitted.approved);
    let expected = naive_product(&data.0, &data.1).unwrap();
    assert_eq!(submitted.c.as_ref().unwrap().as_slice(), expected.as_slice());
    matproof_client::check_freivalds(&spec, &data.0, &data.1, submitted.c.as_ref().unwrap(), 2).unwrap();

    // One entry changed: refused, naming the job and both roots.
    let changed = net.proxy(Tamper::OneEntry).await;
    let data = inputs(3);
    let (spec, signature) = consumer_spec(&net.consumer, &terms, &data.0, &data.1).unwrap();
    open_job(&net.node.url(), &spec, &signature, &data).await.unwrap();
    let error = submit_job(&changed, &spec, &signature, &data).await.expect_err("a changed C");
    let ClientError::Result { job_id, .. } = &error else { panic!("{error}") };
    assert_eq!(*job_id, spec.job_id());
    let text = error.to_string();
    assert!(text.contains(&spec.job_id().to_hex()) && text.contains("the approved receipt's is"), "{text}");

    // Cut before its end: refused.
    let cut = net.proxy(Tamper::Cut).await;
    let data = inputs(5);
    let (spec, signature) = consumer_spec(&net.consumer, &terms, &data.0, &data.1).unwrap();
    open_job(&net.node.url(), &spec, &signature, &data).await.unwrap();
    let error = submit_job(&cut, &spec, &signature, &data).await.expect_err("a cut result");
    assert!(matches!(error, ClientError::Result { .. }), "{error}");
    assert!(error.to_string().contains("cut before its end"), "{error}");
    net.node.ledger().conservation_check().await.unwrap();
}

/// `matproof job open --sidecar --out`: written after the check, never otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_writes_the_result_only_after_it_checked() {
    let net = Net::start(NodeLimits::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (random_i8(10, 21, 7).unwrap(), random_i8(21, 9, 8).unwrap());
    let job = write_job(dir.path(), &net, &a, &b);
    for (tamper, code) in [(Tamper::Nothing, 0), (Tamper::OneEntry, 1), (Tamper::Cut, 1)] {
        let proxy = net.proxy(tamper).await;
        let out = dir.path().join(format!("c-{tamper:?}.npy"));
        let (node_url, job, out_arg) = (net.node.url(), job.clone(), out.clone());
        let output = tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_matproof"))
                .args(["job", "open", "--verifier", &node_url, "--job"])
                .arg(&job)
                .args(["--sidecar", &proxy, "--out"])
                .arg(&out_arg)
                .arg("--receipt")
                .arg(out_arg.with_extension("receipt"))
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert_eq!(output.status.code(), Some(code), "{tamper:?}: {text}");
        if code == 0 {
            assert!(text.contains("result: checked"), "{text}");
            let c = matproof_protocol::npy::read_matrix::<i32, _>(&mut std::fs::File::open(&out).unwrap()).unwrap();
            assert_eq!(c.as_slice(), naive_product(&a, &b).unwrap().as_slice());
        } else {
            assert!(!out.exists(), "{tamper:?}: an output file was written");
            assert!(text.contains("is refused") || text.contains("was cut"), "{text}");
        }
        // No partial file is left beside it either.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

/// Writes a `samples = 0` job file for `a`, `b` with the net's consumer and provider.
fn write_job(dir: &Path, net: &Net, a: &MatrixI8, b: &MatrixI8) -> std::path::PathBuf {
    matproof_protocol::npy::write_matrix_file(&dir.join("a.npy"), a).unwrap();
    matproof_protocol::npy::write_matrix_file(&dir.join("b.npy"), b).unwrap();
    std::fs::write(dir.join("consumer.key"), net.consumer_seed).unwrap();
    let toml = format!(
        "a = \"a.npy\"\nb = \"b.npy\"\ntile = \"4x4\"\nkc = 24\nsamples = 0\nprice = 10\n\
         consumer_identity = \"consumer.key\"\nprovider_public_key = \"{}\"\n",
        net.sidecar.public_key().to_hex()
    );
    let path = dir.join("job.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_over_the_disk_budget_is_refused_before_its_upload() {
    // The budget holds one 10×21 + 21×9 job's inputs (399 bytes), not two.
    let net = Net::start(NodeLimits { max_stored_bytes: 600, ..NodeLimits::default() }).await;
    let terms = net.terms();
    let first = inputs(11);
    let (spec, signature) = consumer_spec(&net.consumer, &terms, &first.0, &first.1).unwrap();
    open_job(&net.node.url(), &spec, &signature, &first).await.unwrap();
    let second = inputs(13);
    let (spec2, signature2) = consumer_spec(&net.consumer, &terms, &second.0, &second.1).unwrap();
    let error = open_job(&net.node.url(), &spec2, &signature2, &second).await.expect_err("over the budget");
    let ClientError::Refused { status, .. } = &error else { panic!("{error}") };
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{error}");
    assert!(status.message().contains("--max-stored-bytes"), "{error}");
    // Nothing of the second job was stored or escrowed.
    let missing = matproof_client::job_status(&net.node.url(), &spec2.job_id()).await.expect_err("not stored");
    assert!(matches!(missing, ClientError::Refused { ref status, .. } if status.code() == tonic::Code::NotFound));
    assert_eq!(net.node.ledger().balance(&consumer_account(&net.consumer.public_key())).await.unwrap(), FUNDS - 100);
}

/// A `samples = 0` receipt: the audit cannot re-check `C` without the data (exit 2) and
/// runs Freivalds with it (exit 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_without_tile_proofs_is_audited_with_data_only() {
    let net = Net::start(NodeLimits::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let data = inputs(17);
    let (spec, signature) = consumer_spec(&net.consumer, &net.terms(), &data.0, &data.1).unwrap();
    open_job(&net.node.url(), &spec, &signature, &data).await.unwrap();
    let submitted = submit_job(&net.sidecar.url(), &spec, &signature, &data).await.unwrap();
    let receipt = dir.path().join("job.receipt");
    std::fs::write(&receipt, prost::Message::encode_to_vec(&submitted.receipt)).unwrap();
    matproof_protocol::npy::write_matrix_file(&dir.path().join("a.npy"), &data.0).unwrap();
    matproof_protocol::npy::write_matrix_file(&dir.path().join("b.npy"), &data.1).unwrap();
    matproof_protocol::npy::write_matrix_file(&dir.path().join("c.npy"), submitted.c.as_ref().unwrap()).unwrap();
    let data_dir = dir.path().to_path_buf();
    let audit = move |with_data: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_matproof"));
        command.arg("audit").arg(&receipt);
        if with_data {
            for (flag, name) in [("--a", "a.npy"), ("--b", "b.npy"), ("--c", "c.npy")] {
                command.arg(flag).arg(data_dir.join(name));
            }
        }
        command.output().unwrap()
    };
    let without = tokio::task::spawn_blocking(move || (audit(false), audit(true))).await.unwrap();
    let (without, with) = without;
    let text = |o: &std::process::Output| {
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    };
    assert_eq!(without.status.code(), Some(2), "{}", text(&without));
    assert!(text(&without).contains("cannot re-check C"), "{}", text(&without));
    assert_eq!(with.status.code(), Some(0), "{}", text(&with));
    assert!(text(&with).contains("audit: ok"), "{}", text(&with));
}

/// A node settles on its own verdict: a job whose policy needs two approvals is refused at
/// `OpenJob` (nothing escrowed) instead of being paid on one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_above_one_is_refused_at_open() {
    let net = Net::start(NodeLimits::default()).await;
    let mut terms = net.terms();
    terms.policy.quorum = 2;
    let data = inputs(19);
    let (spec, signature) = consumer_spec(&net.consumer, &terms, &data.0, &data.1).unwrap();
    let error = open_job(&net.node.url(), &spec, &signature, &data).await.expect_err("quorum 2 on one node");
    let ClientError::Refused { status, .. } = &error else { panic!("{error}") };
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{error}");
    assert!(status.message().contains("quorum"), "{error}");
    assert_eq!(net.node.ledger().balance(&consumer_account(&net.consumer.public_key())).await.unwrap(), FUNDS);
}
