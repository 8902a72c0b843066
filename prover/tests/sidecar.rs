//! The prover sidecar over real gRPC on loopback: a verifier node (SQLite ledger in a
//! temporary directory), the sidecar and a consumer. An honest job is approved and paid
//! exactly once; every refusal of the sidecar comes with the right status code and leaves
//! nothing committed on the verifier.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use matproof_circuits::{TileProvingKey, TileVerifyingKey, development_setup};
use matproof_protocol::commit::{a_digests, b_digests, digest_tree};
use matproof_protocol::identity::{Identity, PublicKey, Signature};
use matproof_protocol::ids::JobId;
use matproof_protocol::limits::MAX_MESSAGE_BYTES;
use matproof_protocol::matrix::{MatrixI8, naive_product, random_i8};
use matproof_protocol::receipt::{PURPOSE_JOB, Verdict};
use matproof_protocol::session::{CheckedResult, ResultReader, UploadWriter};
use matproof_protocol::spec::{JobSpec, Policy, VerificationMode};
use matproof_protocol::tiling::{CircuitShape, Tiling};
use matproof_protocol::wire::pb;
use matproof_prover::sidecar::{RunningSidecar, SidecarConfig, start};
use matproof_verifier::ledger::ESCROW_ACCOUNT;
use matproof_verifier::service::accounts::{consumer_account, provider_account, stake_account};
use matproof_verifier::service::{NodeConfig, NodeLimits, RunningNode};
use rand::SeedableRng;
use tonic::Code;

const SHAPE: CircuitShape = CircuitShape { tm: 2, tn: 2, kc: 8 };
const PRICE: u64 = 700;
const FUNDS: u64 = 10_000;
const STAKE: u64 = 3_000;

/// Two development key pairs for the shape (the second is "unknown" to the sidecar).
fn keys() -> &'static [(TileProvingKey, TileVerifyingKey); 2] {
    static KEYS: OnceLock<[(TileProvingKey, TileVerifyingKey); 2]> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        [development_setup(SHAPE, &mut rng).unwrap(), development_setup(SHAPE, &mut rng).unwrap()]
    })
}

struct Net {
    _dir: tempfile::TempDir,
    node: RunningNode,
    sidecar: RunningSidecar,
    consumer: Identity,
    provider_key: PublicKey,
}

impl Net {
    /// A node and a sidecar pinned to the node's key.
    async fn start() -> Self {
        Self::start_pinned(Some).await
    }

    /// A node and a sidecar pinned to `pin(node's key)`.
    async fn start_pinned(pin: impl FnOnce(PublicKey) -> Option<PublicKey>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let [(pk, vk), (_, vk2)] = keys().clone();
        let node = matproof_verifier::service::start(NodeConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: format!("sqlite://{}?mode=rwc", dir.path().join("ledger.db").display()),
            identity: Identity::generate().unwrap(),
            verifying_keys: vec![vk, vk2],
            limits: NodeLimits::default(),
            tls: Default::default(),
        })
        .await
        .unwrap();
        let consumer = Identity::generate().unwrap();
        let provider = Identity::generate().unwrap();
        let provider_key = provider.public_key();
        node.ledger().deposit(&consumer_account(&consumer.public_key()), FUNDS).await.unwrap();
        node.ledger().deposit(&stake_account(&provider_key), STAKE).await.unwrap();
        let mut config = SidecarConfig::new(node.url(), provider, vec![pk]);
        config.verifier_key = pin(node.verifier_key());
        let sidecar = start(config).await.unwrap();
        assert_eq!(sidecar.public_key(), provider_key);
        Net { _dir: dir, node, sidecar, consumer, provider_key }
    }

    async fn stop(self) {
        self.sidecar.shutdown().await.unwrap();
        self.node.shutdown().await;
    }

    async fn balances(&self) -> [u64; 4] {
        let l = self.node.ledger();
        [
            l.balance(&consumer_account(&self.consumer.public_key())).await.unwrap(),
            l.balance(&provider_account(&self.provider_key)).await.unwrap(),
            l.balance(ESCROW_ACCOUNT).await.unwrap(),
            l.balance(&stake_account(&self.provider_key)).await.unwrap(),
        ]
    }

    /// A signed full-mode spec for `a`, `b`, naming `provider` and pinning `vk`.
    fn spec(&self, a: &MatrixI8, b: &MatrixI8, provider: PublicKey, vk: &TileVerifyingKey) -> (JobSpec, Signature) {
        let tiling = Tiling::new(a.rows(), a.cols(), b.cols(), SHAPE).unwrap();
        let deadline = SystemTime::now() + Duration::from_secs(600);
        let spec = JobSpec {
            m: a.rows() as u64,
            k: a.cols() as u64,
            n: b.cols() as u64,
            shape: SHAPE,
            r_a: digest_tree(&a_digests(&tiling, a).unwrap()).root(),
            r_b: digest_tree(&b_digests(&tiling, b).unwrap()).root(),
            vk_hash: vk.hash(),
            policy: Policy {
                mode: VerificationMode::Full,
                input_scheme: matproof_protocol::spec::InputScheme::Poseidon,
                samples: 3,
                freivalds_rounds: 2,
                quorum: 1,
                target_fraud_ppm: 100_000,
                deadline_unix_ms: deadline.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64,
            },
            price: PRICE,
            slash_amount: 1_000,
            consumer: self.consumer.public_key(),
            provider,
            nonce: Identity::generate().unwrap().public_key().0[..16].to_vec(),
        };
        spec.validate().unwrap();
        let signature = self.consumer.sign(PURPOSE_JOB, &spec.canonical_bytes());
        (spec, signature)
    }

    async fn verifier(&self) -> pb::verifier_client::VerifierClient<tonic::transport::Channel> {
        pb::verifier_client::VerifierClient::connect(self.node.url())
            .await
            .unwrap()
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
    }

    async fn open(&self, spec: &JobSpec, signature: &Signature, a: &MatrixI8, b: &MatrixI8) -> JobId {
        let response = self
            .verifier()
            .await
            .open_job(tokio_stream::iter(upload(spec, signature, a, b)))
            .await
            .unwrap()
            .into_inner();
        JobId::try_from(response.job_id.as_slice()).unwrap()
    }

    /// `SubmitJob` with `messages`; the result read through the session's reader (`C` checked
    /// against the receipt's `R_C`).
    async fn submit(&self, spec: &JobSpec, messages: Vec<pb::JobUpload>) -> Result<CheckedResult, tonic::Status> {
        let mut client = pb::prover_sidecar_client::ProverSidecarClient::connect(self.sidecar.url())
            .await
            .unwrap()
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let mut replies = client.submit_job(tokio_stream::iter(messages)).await?.into_inner();
        let mut reader = ResultReader::new(spec);
        while let Some(reply) = replies.message().await? {
            reader.push(reply).expect("a well-formed result stream");
        }
        Ok(reader.finish().expect("a result that checks"))
    }

    async fn status(&self, job_id: &JobId) -> pb::JobStatus {
        self.verifier()
            .await
            .get_job_status(pb::JobStatusRequest { job_id: job_id.to_vec() })
            .await
            .unwrap()
            .into_inner()
    }
}

/// The consumer's upload: the signed spec, then A and B in whole rows.
fn upload(spec: &JobSpec, signature: &Signature, a: &MatrixI8, b: &MatrixI8) -> Vec<pb::JobUpload> {
    UploadWriter::new(spec, signature, Some((Arc::new(a.clone()), Arc::new(b.clone())))).collect()
}

fn head_mut(messages: &mut [pb::JobUpload]) -> &mut pb::SignedSpec {
    match messages[0].part.as_mut() {
        Some(pb::job_upload::Part::Spec(head)) => head,
        _ => panic!("an upload starts with its spec"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_job_is_approved_and_paid_exactly_once() {
    let net = Net::start().await;
    let (a, b) = (random_i8(7, 8, 1).unwrap(), random_i8(8, 5, 2).unwrap());
    let (spec, signature) = net.spec(&a, &b, net.provider_key, &keys()[0].1);
    let before = net.balances().await;
    assert_eq!(before, [FUNDS, 0, 0, STAKE]);
    let job_id = net.open(&spec, &signature, &a, &b).await;
    assert_eq!(job_id, spec.job_id());
    assert_eq!(net.balances().await, [FUNDS - PRICE, 0, PRICE, STAKE]);

    let result = net.submit(&spec, upload(&spec, &signature, &a, &b)).await.unwrap();
    let receipt = result.receipt.clone();
    assert_eq!(receipt.spec.job_id(), job_id);
    assert_eq!(receipt.spec, spec);
    assert_eq!(receipt.verdicts.len(), 1);
    assert_eq!(receipt.verdicts[0].verdict, Verdict::Approved, "{}", receipt.verdicts[0].reason);
    receipt.verdicts[0].verify().unwrap();
    assert_eq!(receipt.verdicts[0].verifier_key, net.node.verifier_key());
    assert_eq!(receipt.openings.len(), 3);
    // The committed R_C is the one of the true product.
    let tiling = spec.tiling().unwrap();
    let c = naive_product(&a, &b).unwrap();
    assert_eq!(receipt.r_c, matproof_protocol::commit::c_tree(&tiling, &c).unwrap().root());
    // The consumer got C, bit-identical to A·B.
    assert_eq!(result.c.as_ref().map(|c| c.as_slice()), Some(c.as_slice()));

    let paid = [FUNDS - PRICE, PRICE, 0, STAKE];
    assert_eq!(net.balances().await, paid);
    net.node.ledger().conservation_check().await.unwrap();
    let status = net.status(&job_id).await;
    assert_eq!((status.state.as_str(), status.escrow.as_str()), ("approved", "posted"));

    // The same job again: same R_C, same challenge, the stored verdict, no second payment.
    let again = net.submit(&spec, upload(&spec, &signature, &a, &b)).await.unwrap().receipt;
    assert_eq!(again.verdicts[0].verdict, Verdict::Approved);
    assert_eq!(again.r_c, receipt.r_c);
    assert_eq!(net.balances().await, paid);
    net.node.ledger().conservation_check().await.unwrap();
    net.stop().await;
}

/// A sidecar pinned to another verifier key refuses the challenge before proving: the job is
/// left committed, its escrow pending (voided at expiry), nobody paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_from_another_verifier_than_the_pinned_one_is_refused() {
    let impostor_key = Identity::generate().unwrap().public_key();
    let net = Net::start_pinned(|_| Some(impostor_key)).await;
    let (a, b) = (random_i8(7, 8, 3).unwrap(), random_i8(8, 5, 4).unwrap());
    let (spec, signature) = net.spec(&a, &b, net.provider_key, &keys()[0].1);
    let job_id = net.open(&spec, &signature, &a, &b).await;
    let error = net.submit(&spec, upload(&spec, &signature, &a, &b)).await.expect_err("pinned to another key");
    assert_eq!(error.code(), tonic::Code::FailedPrecondition, "{error:?}");
    assert!(error.message().contains("not the pinned verifier"), "{error:?}");
    assert!(error.message().contains(&impostor_key.to_hex()), "{error:?}");
    assert_eq!(net.balances().await, [FUNDS - PRICE, 0, PRICE, STAKE]);
    let status = net.status(&job_id).await;
    assert_eq!(status.escrow.as_str(), "pending", "{status:?}");
    assert_ne!(status.state.as_str(), "approved", "{status:?}");
    net.node.ledger().conservation_check().await.unwrap();
    net.stop().await;

    // Unpinned, the same kind of job runs.
    let net = Net::start_pinned(|_| None).await;
    let (spec, signature) = net.spec(&a, &b, net.provider_key, &keys()[0].1);
    net.open(&spec, &signature, &a, &b).await;
    net.submit(&spec, upload(&spec, &signature, &a, &b)).await.expect("unpinned");
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_have_the_right_code_and_commit_nothing() {
    let net = Net::start().await;
    let (a, b) = (random_i8(6, 8, 3).unwrap(), random_i8(8, 6, 4).unwrap());
    let (vk, other_vk) = (&keys()[0].1, &keys()[1].1);

    // Each case: a job opened honestly on the verifier, then a bad submission to the sidecar.
    let mut opened = Vec::new();

    // A differs from the data R_A commits to.
    let (spec, signature) = net.spec(&a, &b, net.provider_key, vk);
    opened.push(net.open(&spec, &signature, &a, &b).await);
    let mut other_a = a.clone();
    other_a.as_mut_slice()[0] = other_a.as_slice()[0].wrapping_add(1);
    let err = net.submit(&spec, upload(&spec, &signature, &other_a, &b)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("rows (A)") && err.message().contains("r_a"), "{}", err.message());

    // B likewise.
    let mut other_b = b.clone();
    other_b.as_mut_slice()[5] = other_b.as_slice()[5].wrapping_sub(1);
    let err = net.submit(&spec, upload(&spec, &signature, &a, &other_b)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("rows (B)"), "{}", err.message());

    // A bad consumer signature.
    let mut bad = signature;
    bad.0[10] ^= 1;
    let err = net.submit(&spec, upload(&spec, &bad, &a, &b)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(err.message().contains("consumer_signature"), "{}", err.message());

    // A spec naming another provider.
    let stranger = Identity::generate().unwrap().public_key();
    let (spec2, signature2) = net.spec(&a, &b, stranger, vk);
    opened.push(net.open(&spec2, &signature2, &a, &b).await);
    let err = net.submit(&spec2, upload(&spec2, &signature2, &a, &b)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("provider"), "{}", err.message());

    // A verifying key the verifier holds but the sidecar has no proving key for.
    let (spec3, signature3) = net.spec(&a, &b, net.provider_key, other_vk);
    opened.push(net.open(&spec3, &signature3, &a, &b).await);
    let err = net.submit(&spec3, upload(&spec3, &signature3, &a, &b)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("proving key"), "{}", err.message());

    // Malformed fields are named.
    let mut no_spec = upload(&spec, &signature, &a, &b);
    head_mut(&mut no_spec).spec = None;
    let err = net.submit(&spec, no_spec).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::InvalidArgument, "invalid field spec: missing"));
    let mut short_r_a = upload(&spec, &signature, &a, &b);
    head_mut(&mut short_r_a).spec.as_mut().unwrap().r_a.pop();
    let err = net.submit(&spec, short_r_a).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("invalid field spec.r_a"), "{}", err.message());
    let mut partial_row = upload(&spec, &signature, &a, &b);
    if let Some(pb::job_upload::Part::Rows(rows)) = partial_row[2].part.as_mut() {
        rows.values.truncate(rows.values.len() - 1);
    }
    let err = net.submit(&spec, partial_row).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("invalid field rows.values"), "{}", err.message());
    let mut b_first = upload(&spec, &signature, &a, &b);
    b_first.swap(1, 2);
    let err = net.submit(&spec, b_first).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("invalid field rows.operand"), "{}", err.message());
    let mut cut = upload(&spec, &signature, &a, &b);
    cut.pop();
    let err = net.submit(&spec, cut).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("the upload ended after"), "{}", err.message());

    // Nothing reached the verifier: every job is still open, uncommitted, its escrow pending.
    for job_id in &opened {
        let status = net.status(job_id).await;
        assert_eq!((status.state.as_str(), status.escrow.as_str()), ("opened", "pending"), "{job_id}");
        assert!(status.r_c.is_empty());
    }
    assert_eq!(net.balances().await, [FUNDS - 3 * PRICE, 0, 3 * PRICE, STAKE]);
    net.node.ledger().conservation_check().await.unwrap();
    net.stop().await;
}
