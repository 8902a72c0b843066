//! TLS on every endpoint, over real TLS on loopback with certificates made in the test
//! (`matproof_testkit::pki`): a verifier node that requires providers' client certificates,
//! a prover sidecar with its own certificate and one for the node, and the consumer's
//! client. Jobs are full mode with `samples = 0` (no keys needed).
//!
//! - A job end to end over TLS: the consumer's `C` is `A·B`.
//! - A client that does not trust the node's CA is refused at the handshake.
//! - A sidecar without the client certificate the node requires is refused
//!   (`UNAUTHENTICATED`), and one whose certificate another CA signed cannot connect.
//! - A plaintext client against a TLS node gets an error that says to use `https://`, within
//!   the client's connect timeout, not a hang; a node refuses plaintext off loopback.

use std::sync::Arc;
use std::time::Duration;

use matproof_client::{ClientError, JobTerms, Peer, TlsOptions, consumer_spec, job_status, open_job, submit_job};
use matproof_protocol::identity::Identity;
use matproof_protocol::ids::{JobId, VkHash};
use matproof_protocol::matrix::{naive_product, random_i8};
use matproof_protocol::session::SharedInputs;
use matproof_protocol::tiling::CircuitShape;
use matproof_protocol::tls::PemIdentity;
use matproof_prover::sidecar::{RunningSidecar, SidecarConfig};
use matproof_testkit::full_mode_policy;
use matproof_testkit::pki::{CertPair, TestCa};
use matproof_verifier::service::accounts::consumer_account;
use matproof_verifier::service::{NodeConfig, NodeError, NodeLimits, RunningNode, TlsError};

const SHAPE: CircuitShape = CircuitShape { tm: 4, tn: 4, kc: 24 };
/// Longer than the client's connect timeout: past it, the client hung.
const NO_HANG: Duration = Duration::from_secs(30);

fn identity_of(pair: &CertPair) -> PemIdentity {
    PemIdentity { cert_pem: pair.cert_pem.clone().into_bytes(), key_pem: pair.key_pem.clone().into_bytes() }
}

/// Trusts `ca` only, with no client certificate.
fn trusting(ca: &TestCa) -> TlsOptions {
    TlsOptions { ca_pem: Some(ca.ca_pem.clone().into_bytes()), ..TlsOptions::default() }
}

/// How the sidecar dials the node.
enum SidecarCert {
    /// A client certificate signed by the node's CA.
    Signed,
    /// None.
    Missing,
    /// One signed by another CA.
    Foreign,
}

struct TlsNet {
    _dir: tempfile::TempDir,
    ca: TestCa,
    node: RunningNode,
    sidecar: RunningSidecar,
    consumer: Identity,
}

impl TlsNet {
    async fn start(sidecar_cert: SidecarCert) -> TlsNet {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("matproof test CA");
        // The node: its certificate, and the CA of providers' client certificates.
        let node_tls = TlsOptions { identity: Some(identity_of(&ca.loopback_server())), ..trusting(&ca) };
        let node = matproof_verifier::service::start(NodeConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: format!("sqlite://{}?mode=rwc", dir.path().join("node.db").display()),
            identity: Identity::generate().unwrap(),
            verifying_keys: Vec::new(),
            limits: NodeLimits::default(),
            tls: node_tls,
        })
        .await
        .unwrap();
        assert!(node.url().starts_with("https://"), "{}", node.url());
        let consumer = Identity::from_seed([31; 32]);
        node.ledger().deposit(&consumer_account(&consumer.public_key()), 10_000).await.unwrap();

        let mut config = SidecarConfig::new(node.url(), Identity::generate().unwrap(), Vec::new());
        config.verifier_key = Some(node.verifier_key());
        config.tls = TlsOptions { identity: Some(identity_of(&ca.loopback_server())), ..TlsOptions::default() };
        config.verifier_tls = trusting(&ca);
        config.verifier_tls.identity = match sidecar_cert {
            SidecarCert::Signed => Some(identity_of(&ca.leaf(&["provider.test"]))),
            SidecarCert::Missing => None,
            SidecarCert::Foreign => Some(identity_of(&TestCa::new("another CA").leaf(&["provider.test"]))),
        };
        let sidecar = matproof_prover::sidecar::start(config).await.unwrap();
        assert!(sidecar.url().starts_with("https://"), "{}", sidecar.url());
        TlsNet { _dir: dir, ca, node, sidecar, consumer }
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

    fn node_peer(&self) -> Peer {
        Peer::new(self.node.url(), trusting(&self.ca))
    }

    fn sidecar_peer(&self) -> Peer {
        Peer::new(self.sidecar.url(), trusting(&self.ca))
    }

    /// Opens a job on the node and submits it to the sidecar, both over TLS.
    async fn run_job(&self, seed: u64) -> (SharedInputs, Result<matproof_client::SubmittedJob, ClientError>) {
        let data: SharedInputs =
            (Arc::new(random_i8(10, 21, seed).unwrap()), Arc::new(random_i8(21, 9, seed + 1).unwrap()));
        let (spec, signature) = consumer_spec(&self.consumer, &self.terms(), &data.0, &data.1).unwrap();
        open_job(self.node_peer(), &spec, &signature, &data).await.unwrap();
        let submitted = submit_job(self.sidecar_peer(), &spec, &signature, &data).await;
        (data, submitted)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_end_to_end_over_tls_with_the_sidecar_s_client_certificate() {
    let net = TlsNet::start(SidecarCert::Signed).await;
    let (data, submitted) = net.run_job(1).await;
    let submitted = submitted.unwrap();
    assert!(submitted.approved);
    let expected = naive_product(&data.0, &data.1).unwrap();
    assert_eq!(submitted.c.as_ref().unwrap().as_slice(), expected.as_slice());
    let status = job_status(net.node_peer(), &submitted.job_id).await.unwrap();
    assert_eq!(status.state, "approved");
    net.node.ledger().conservation_check().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_trust_the_ca_is_refused() {
    let net = TlsNet::start(SidecarCert::Signed).await;
    let stranger = TestCa::new("a CA the node never used");
    let peer = Peer::new(net.node.url(), trusting(&stranger));
    let answer = tokio::time::timeout(NO_HANG, job_status(peer, &JobId([7; 32]))).await.expect("no hang");
    let error = answer.expect_err("an untrusted server certificate");
    assert!(matches!(error, ClientError::Connect { .. }), "{error}");
    assert!(error.to_string().to_lowercase().contains("certificate"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_without_the_required_client_certificate_is_refused_by_the_node() {
    let net = TlsNet::start(SidecarCert::Missing).await;
    let (_, submitted) = net.run_job(3).await;
    let error = submitted.expect_err("no client certificate");
    let ClientError::Refused { status, .. } = &error else { panic!("{error}") };
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{error}");
    assert!(status.message().contains("client certificate"), "{error}");

    // A certificate from another CA fails the handshake: the sidecar cannot reach the node.
    let net = TlsNet::start(SidecarCert::Foreign).await;
    let (_, submitted) = net.run_job(5).await;
    let error = submitted.expect_err("a foreign client certificate");
    let ClientError::Refused { status, .. } = &error else { panic!("{error}") };
    assert_eq!(status.code(), tonic::Code::Unavailable, "{error}");
    net.node.ledger().conservation_check().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_client_against_a_tls_node_gets_a_clear_error_not_a_hang() {
    let net = TlsNet::start(SidecarCert::Signed).await;
    let plaintext = format!("http://{}", net.node.addr());
    let answer = tokio::time::timeout(NO_HANG, job_status(&plaintext, &JobId([7; 32]))).await.expect("no hang");
    let error = answer.expect_err("plaintext against TLS");
    assert!(error.to_string().contains("use https://"), "{error}");

    // And a node refuses plaintext off loopback (before it binds anything).
    let dir = tempfile::tempdir().unwrap();
    let refused = matproof_verifier::service::start(NodeConfig {
        listen: "0.0.0.0:0".parse().unwrap(),
        database_url: format!("sqlite://{}?mode=rwc", dir.path().join("open.db").display()),
        identity: Identity::generate().unwrap(),
        verifying_keys: Vec::new(),
        limits: NodeLimits::default(),
        tls: TlsOptions::default(),
    })
    .await;
    assert!(matches!(refused, Err(NodeError::Tls(TlsError::PlaintextListen { .. }))), "{refused:?}");
}
