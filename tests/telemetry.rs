//! Operating a node and a sidecar: their metrics move by exactly what a job did and parse as
//! Prometheus' text format; the node's status page shows the job, its verdict and the
//! ledger's totals, escapes what it shows, and serves the receipt; in a real browser
//! (Debian's `chromium`, headless) when one is installed: `.ci/run` installs it and sets
//! `MATPROOF_REQUIRE_BROWSER=1`, so that there the browser part cannot be skipped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use matproof_client::{JobTerms, Peer, TlsOptions, consumer_spec, fetch_receipt, job_status, open_job, submit_job};
use matproof_protocol::identity::Identity;
use matproof_protocol::ids::{JobId, VkHash};
use matproof_protocol::matrix::random_i8;
use matproof_protocol::session::SharedInputs;
use matproof_protocol::spec::{InputScheme, Policy, VerificationMode};
use matproof_protocol::tiling::CircuitShape;
use matproof_prover::sidecar::{RunningSidecar, SidecarConfig};
use matproof_telemetry::http::get;
use matproof_testkit::{dev_keys, full_mode_policy};
use matproof_verifier::service::accounts::consumer_account;
use matproof_verifier::service::{HttpPages, HttpServer, NodeConfig, NodeLimits, RunningNode};
use prost::Message;

const SHAPE: CircuitShape = CircuitShape { tm: 4, tn: 4, kc: 24 };
const PRICE: u64 = 100;
const DEPOSIT: u64 = 10_000;
/// The job's shape: A is M×K, B is K×N.
const M: usize = 10;
const K: usize = 21;
const N: usize = 9;
/// One job's input bytes (`A`, `B` as i8) and result bytes (`C` as i32).
const INPUT_BYTES: f64 = (M * K + K * N) as f64;
const C_BYTES: f64 = (4 * M * N) as f64;

struct Net {
    dir: tempfile::TempDir,
    node: RunningNode,
    page: HttpServer,
    sidecar: RunningSidecar,
    sidecar_metrics: HttpServer,
    consumer: Identity,
}

impl Net {
    async fn start() -> Net {
        let dir = tempfile::tempdir().unwrap();
        let node = matproof_verifier::service::start(NodeConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: database_url(dir.path()),
            identity: Identity::generate().unwrap(),
            verifying_keys: vec![dev_keys(SHAPE).1.clone()],
            limits: NodeLimits::default(),
            tls: TlsOptions::default(),
        })
        .await
        .unwrap();
        let consumer = Identity::from_seed([41; 32]);
        node.ledger().deposit(&consumer_account(&consumer.public_key()), DEPOSIT).await.unwrap();
        let page = node.serve_http("127.0.0.1:0".parse().unwrap(), HttpPages { status_page: true, insecure: false });
        let page = page.await.unwrap();
        let mut config = SidecarConfig::new(node.url(), Identity::generate().unwrap(), vec![dev_keys(SHAPE).0.clone()]);
        config.verifier_key = Some(node.verifier_key());
        let sidecar = matproof_prover::sidecar::start(config).await.unwrap();
        let sidecar_metrics = sidecar.serve_metrics("127.0.0.1:0".parse().unwrap(), false).await.unwrap();
        Net { dir, node, page, sidecar, sidecar_metrics, consumer }
    }

    /// A full-mode job without sampled tiles, approved.
    async fn run_job(&self, seed: u64) -> JobId {
        self.run_job_under(seed, full_mode_policy(Duration::from_secs(600)), VkHash([0; 32])).await
    }

    /// A succinct job of `samples` tile proofs under the development key, approved.
    async fn run_succinct_job(&self, seed: u64, samples: u32) -> JobId {
        let mut policy = full_mode_policy(Duration::from_secs(600));
        policy.mode = VerificationMode::Succinct;
        policy.input_scheme = InputScheme::Poseidon;
        policy.samples = samples;
        self.run_job_under(seed, policy, dev_keys(SHAPE).1.hash()).await
    }

    async fn run_job_under(&self, seed: u64, policy: Policy, vk_hash: VkHash) -> JobId {
        let data: SharedInputs =
            (Arc::new(random_i8(M, K, seed).unwrap()), Arc::new(random_i8(K, N, seed + 1).unwrap()));
        let terms = JobTerms {
            provider: self.sidecar.public_key(),
            shape: SHAPE,
            vk_hash,
            policy,
            price: PRICE,
            slash_amount: 0,
        };
        let (spec, signature) = consumer_spec(&self.consumer, &terms, &data.0, &data.1).unwrap();
        open_job(self.node_peer(), &spec, &signature, &data).await.unwrap();
        let submitted = submit_job(Peer::new(self.sidecar.url(), TlsOptions::default()), &spec, &signature, &data);
        let submitted = submitted.await.unwrap();
        assert!(submitted.approved);
        submitted.job_id
    }

    fn node_peer(&self) -> Peer {
        Peer::new(self.node.url(), TlsOptions::default())
    }
}

fn database_url(dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("node.db").display())
}

/// Every sample of a scrape, by its name and sorted labels.
type Samples = HashMap<String, f64>;

fn key(name: &str, labels: &[(&str, &str)]) -> String {
    let mut labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    labels.sort();
    format!("{name}{{{}}}", labels.join(","))
}

/// Scrapes `addr/metrics` and parses it with a Prometheus text-format parser.
async fn scrape(addr: SocketAddr) -> Samples {
    let (status, body) = get(addr, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parses");
    let mut samples = Samples::new();
    for sample in scrape.samples {
        let mut labels: Vec<(&str, &str)> = sample.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        labels.sort();
        let value = match sample.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
            prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(buckets) => {
                // The +Inf bucket: how many observations.
                buckets.iter().find(|b| b.less_than.is_infinite()).map_or(0.0, |b| b.count)
            }
            prometheus_parse::Value::Summary(_) => continue,
        };
        samples.insert(key(&sample.metric, &labels), value);
    }
    samples
}

fn value(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    *samples.get(&key(name, labels)).unwrap_or(&0.0)
}

/// `after − before` of each named sample equals the expected change.
/// A sample's name, labels and the change expected of it.
type Expected<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

fn assert_moved(before: &Samples, after: &Samples, expected: &[Expected<'_>]) {
    for (name, labels, delta) in expected {
        let moved = value(after, name, labels) - value(before, name, labels);
        assert_eq!(moved, *delta, "{name}{labels:?} moved by {moved}, not {delta}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_by_exactly_what_one_job_did() {
    let net = Net::start().await;
    let (node_before, sidecar_before) = (scrape(net.page.addr()).await, scrape(net.sidecar_metrics.addr()).await);
    net.run_job(1).await;
    // One refusal: the status of a job nobody opened.
    let unknown = job_status(net.node_peer(), &JobId([7; 32])).await;
    assert!(unknown.is_err());
    let node_after = scrape(net.page.addr()).await;
    assert_moved(
        &node_before,
        &node_after,
        &[
            ("matproof_node_jobs_opened_total", &[], 1.0),
            ("matproof_node_challenges_total", &[], 1.0),
            ("matproof_node_verdicts_total", &[("verdict", "approved")], 1.0),
            ("matproof_node_verdicts_total", &[("verdict", "rejected")], 0.0),
            ("matproof_node_fraud_proofs_total", &[], 0.0),
            ("matproof_node_settlements_total", &[], 1.0),
            ("matproof_node_received_bytes_total", &[("stream", "inputs")], INPUT_BYTES),
            ("matproof_node_received_bytes_total", &[("stream", "c")], C_BYTES),
            ("matproof_node_proofs_checked_total", &[], 0.0),
            ("matproof_node_settlement_seconds", &[], 1.0),
            ("matproof_node_response_check_seconds", &[], 1.0),
            ("matproof_node_freivalds_seconds", &[], 1.0),
            ("matproof_node_refusals_total", &[("code", "NOT_FOUND"), ("method", "GetJobStatus")], 1.0),
            ("matproof_node_jobs", &[("state", "approved")], 1.0),
            ("matproof_ledger_transfer_amount", &[("state", "posted")], PRICE as f64),
        ],
    );
    for (name, v) in [
        ("matproof_node_database_up", 1.0),
        ("matproof_ledger_conserved", 1.0),
        ("matproof_ledger_escrow_balance", 0.0),
        ("matproof_ledger_minted", DEPOSIT as f64),
    ] {
        assert_eq!(value(&node_after, name, &[]), v, "{name}");
    }
    // Only the one refusal: no other method or code moved.
    let refusals: f64 =
        node_after.iter().filter(|(k, _)| k.starts_with("matproof_node_refusals_total")).map(|(_, v)| v).sum();
    assert_eq!(refusals, 1.0);

    let sidecar_after = scrape(net.sidecar_metrics.addr()).await;
    assert_moved(
        &sidecar_before,
        &sidecar_after,
        &[
            ("matproof_sidecar_jobs_total", &[("outcome", "approved")], 1.0),
            ("matproof_sidecar_jobs_total", &[("outcome", "failed")], 0.0),
            ("matproof_sidecar_received_bytes_total", &[], INPUT_BYTES),
            ("matproof_sidecar_result_bytes_total", &[], C_BYTES),
            ("matproof_sidecar_proofs_total", &[], 0.0),
            ("matproof_sidecar_phase_seconds", &[("phase", "execute")], 1.0),
            ("matproof_sidecar_phase_seconds", &[("phase", "respond")], 1.0),
        ],
    );
    assert_eq!(value(&sidecar_after, "matproof_sidecar_jobs_in_flight", &[]), 0.0);

    succinct_job_moves_the_proof_metrics(&net, (node_after, sidecar_after)).await;
    connections_are_counted_while_open(&net).await;
}

/// A succinct job of two sampled tiles: proofs made and checked, no inputs at the node.
async fn succinct_job_moves_the_proof_metrics(net: &Net, before: (Samples, Samples)) {
    let (node_before, sidecar_before) = before;
    net.run_succinct_job(5, 2).await;
    let node_after = scrape(net.page.addr()).await;
    assert_moved(
        &node_before,
        &node_after,
        &[
            ("matproof_node_jobs_opened_total", &[], 1.0),
            ("matproof_node_verdicts_total", &[("verdict", "approved")], 1.0),
            ("matproof_node_proofs_checked_total", &[], 2.0),
            ("matproof_node_proof_check_seconds", &[], 1.0),
            ("matproof_node_freivalds_seconds", &[], 0.0),
            ("matproof_node_received_bytes_total", &[("stream", "inputs")], 0.0),
            ("matproof_node_received_bytes_total", &[("stream", "c")], 0.0),
            ("matproof_node_jobs", &[("state", "approved")], 1.0),
            ("matproof_ledger_transfer_amount", &[("state", "posted")], PRICE as f64),
        ],
    );
    let sidecar_after = scrape(net.sidecar_metrics.addr()).await;
    assert_moved(
        &sidecar_before,
        &sidecar_after,
        &[
            ("matproof_sidecar_jobs_total", &[("outcome", "approved")], 1.0),
            ("matproof_sidecar_proofs_total", &[], 2.0),
            ("matproof_sidecar_phase_seconds", &[("phase", "prove")], 1.0),
            ("matproof_sidecar_received_bytes_total", &[], INPUT_BYTES),
            ("matproof_sidecar_result_bytes_total", &[], C_BYTES),
        ],
    );
}

/// A connection held open is counted while open, and given back when it closes.
async fn connections_are_counted_while_open(net: &Net) {
    for (url, metrics, name) in [
        (net.node.url(), net.page.addr(), "matproof_node_open_connections"),
        (net.sidecar.url(), net.sidecar_metrics.addr(), "matproof_sidecar_open_connections"),
    ] {
        let grpc: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
        let idle = value(&scrape(metrics).await, name, &[]);
        let held = tokio::net::TcpStream::connect(grpc).await.unwrap();
        wait_for_gauge(metrics, name, idle + 1.0).await;
        drop(held);
        wait_for_gauge(metrics, name, idle).await;
    }
}

/// Scrapes until `name` reads `expected` (the server counts a connection once it has
/// accepted it, and gives it back once it has seen it close); fails after 10 s.
async fn wait_for_gauge(metrics: SocketAddr, name: &str, expected: f64) {
    for _ in 0..200 {
        if value(&scrape(metrics).await, name, &[]) == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} never read {expected}");
}

/// Rewrites the stored receipt of `job_id` so that its verdict's reason holds markup: what
/// the page must render as text, whatever put it there.
async fn plant_reason(dir: &Path, job_id: &JobId, reason: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&database_url(dir)).await.unwrap();
    let row: (String,) = sqlx::query_as("SELECT receipt FROM node_jobs WHERE job_id = $1")
        .bind(job_id.to_string())
        .fetch_one(&pool)
        .await
        .unwrap();
    let mut receipt = matproof_protocol::wire::pb::Receipt::decode(hex::decode(row.0).unwrap().as_slice()).unwrap();
    receipt.verdicts[0].reason = reason.to_string();
    sqlx::query("UPDATE node_jobs SET receipt = $1 WHERE job_id = $2")
        .bind(hex::encode(receipt.encode_to_vec()))
        .bind(job_id.to_string())
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

const PLANTED: &str = "<script>document.title='owned'</script><b>bold</b>";
const PLANTED_ESCAPED: &str = "&lt;script&gt;document.title=&#39;owned&#39;&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_jobs_verdicts_and_totals_and_escapes_what_it_shows() {
    let net = Net::start().await;
    let first = net.run_job(1).await;
    let second = net.run_job(3).await;
    plant_reason(net.dir.path(), &second, PLANTED).await;
    let addr = net.page.addr();
    let (status, body) = get(addr, "/").await.unwrap();
    assert_eq!(status, 200);
    let html = String::from_utf8(body).unwrap();
    for expected in [
        first.to_string().as_str(),
        second.to_string().as_str(),
        "<td class=\"verdict\">approved</td>",
        "<td id=\"ledger-posted\">200</td>",
        "<td id=\"ledger-escrow\">0</td>",
        "<td id=\"ledger-minted\">10000</td>",
        "<span class=\"ok\">ok</span>",
        "all checks passed",
        PLANTED_ESCAPED,
        &hex::encode(net.node.verifier_key().0),
        // The provider's record: two jobs, both approved (score: the Wilson bound of 2 of 2).
        &format!(
            "<tr class=\"provider\"><td><code>{}</code></td><td>0.3424</td><td>2</td><td>2</td>",
            net.sidecar.public_key().to_hex()
        ),
    ] {
        assert!(html.contains(expected), "no {expected:?} in\n{html}");
    }
    assert!(!html.contains("<script") && !html.contains("<b>"), "markup from a stored value:\n{html}");

    // The receipt link serves what GetReceipt answers.
    let (status, bytes) = get(addr, &format!("/jobs/{first}/receipt")).await.unwrap();
    assert_eq!(status, 200);
    let receipt = fetch_receipt(net.node_peer(), &first).await.unwrap();
    assert_eq!(bytes, receipt.encode_to_vec());
    for (path, code) in [
        ("/health", 200),
        ("/jobs/zz/receipt", 400),
        (&format!("/jobs/{}/receipt", JobId([9; 32])), 404),
        ("/?page=x", 400),
        ("/nope", 404),
    ] {
        assert_eq!(get(addr, path).await.unwrap().0, code, "{path}");
    }
    browser_check(&format!("{}/", net.page.url()), &[&first.to_string(), &second.to_string()]);
}

/// The browser: `MATPROOF_CHROMIUM`, else `/usr/bin/chromium` if it exists.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("MATPROOF_CHROMIUM").map(PathBuf::from).unwrap_or_else(|| "/usr/bin/chromium".into());
    path.exists().then_some(path)
}

fn headless(browser: &Path, args: &[&str]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    let profile_arg = format!("--user-data-dir={}", profile.path().display());
    let base = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage"];
    let output = Command::new(browser).args(base).arg(profile_arg).args(args).output().expect("run chromium");
    assert!(output.status.success(), "chromium {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output
}

/// Loads the page in headless Chromium: the DOM it built holds both jobs, the verdict, the
/// totals and the planted reason as text (no element from it); a screenshot is written to
/// `MATPROOF_SCREENSHOT` when set.
fn browser_check(url: &str, jobs: &[&str]) {
    let Some(browser) = chromium() else {
        assert!(std::env::var_os("MATPROOF_REQUIRE_BROWSER").is_none(), "MATPROOF_REQUIRE_BROWSER is set: no chromium");
        eprintln!("no chromium (set MATPROOF_CHROMIUM): the browser part of the status-page test did not run");
        return;
    };
    let dom = String::from_utf8(headless(&browser, &["--dump-dom", url]).stdout).unwrap();
    for expected in jobs.iter().copied().chain(["approved", "<td id=\"ledger-posted\">200</td>", "all checks passed"]) {
        assert!(dom.contains(expected), "the browser's DOM has no {expected:?}:\n{dom}");
    }
    // Serialized back, a text node shows `<` as `&lt;`; had the reason become markup, the
    // DOM would hold a script element (and the title would be "owned").
    assert!(dom.contains("&lt;script&gt;document.title='owned'&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;"), "{dom}");
    assert!(!dom.contains("<script") && !dom.contains("<b>"), "markup in the DOM:\n{dom}");
    assert!(dom.contains("<title>matproof verifier node</title>"), "{dom}");
    if let Some(out) = std::env::var_os("MATPROOF_SCREENSHOT") {
        let shot = format!("--screenshot={}", PathBuf::from(out).display());
        headless(&browser, &[&shot, "--window-size=1400,900", "--hide-scrollbars", url]);
    }
}
