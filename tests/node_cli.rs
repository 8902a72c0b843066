//! The node commands end to end, as processes: `matproof verifier serve` in the background,
//! `verifier fund`, `prover run` on a tiny job (approved, receipt written and audited),
//! `job status`; then `prover serve` in the background and `job open --sidecar`.
#![allow(clippy::too_many_lines)] // long scenarios read top to bottom

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use matproof_protocol::matrix::random_i8;
use matproof_protocol::npy::write_matrix_file;

fn matproof(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_matproof")).args(args).output().expect("run matproof")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn ok(args: &[&str]) -> String {
    let out = matproof(args);
    assert!(out.status.success(), "matproof {}: {}", args.join(" "), text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value after `prefix` on the first line that starts with it.
fn field(output: &str, prefix: &str) -> String {
    output
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{output}"))
        .trim()
        .to_string()
}

/// A background `matproof` process, stopped with SIGTERM (as by Ctrl-C) when dropped.
struct Background {
    child: Child,
    stdout: mpsc::Receiver<String>,
}

impl Background {
    /// Starts `matproof args` (stderr to `log`, or inherited) and waits for a stdout line
    /// starting with `ready`; returns the rest of that line.
    fn start(args: &[&str], ready: &str, log: Option<&Path>) -> (Self, String) {
        let stderr = match log {
            Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
            None => Stdio::inherit(),
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_matproof"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn matproof");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut background = Background { child, stdout: rx };
        let value = background.line(ready);
        (background, value)
    }

    /// Waits for the next stdout line starting with `prefix`; returns the rest of it.
    fn line(&mut self, prefix: &str) -> String {
        loop {
            let line = self.stdout.recv_timeout(Duration::from_secs(60));
            let line = line.unwrap_or_else(|_| panic!("the server printed no line starting with {prefix:?}"));
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.trim().to_string();
            }
        }
    }

    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "a background server exited with {status}");
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn s(path: &Path) -> String {
    path.display().to_string()
}

fn write_job(dir: &Path, name: &str, keys: &Path) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "# a tiny job\n\
             a = \"a.npy\"\n\
             b = \"b.npy\"\n\
             tile = \"2x2\"\n\
             kc = 8\n\
             mode = \"full\"\n\
             samples = 3\n\
             price = 250\n\
             slash_amount = 100\n\
             consumer_identity = \"consumer.key\"\n\
             provider_identity = \"provider.key\"\n\
             keys = {:?}\n",
            s(keys)
        ),
    )
    .unwrap();
    path
}

#[test]
fn verifier_serve_fund_prover_run_and_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let keys = root.join("keys");
    ok(&["setup", "--tile", "2x2", "--k", "8", "--out", &s(&keys)]);
    write_matrix_file(&root.join("a.npy"), &random_i8(5, 8, 1).unwrap()).unwrap();
    write_matrix_file(&root.join("b.npy"), &random_i8(8, 6, 2).unwrap()).unwrap();
    let job = write_job(root, "job.toml", &keys);

    let accounts = ok(&["job", "accounts", "--job", &s(&job)]);
    let consumer = field(&accounts, "consumer:");
    let stake = field(&accounts, "stake:");
    assert!(consumer.starts_with("consumer-") && stake.starts_with("stake-"), "{accounts}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(root.join("consumer.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "identity files are private");
    }

    let db = format!("sqlite://{}?mode=rwc", s(&root.join("ledger.db")));
    let verifier_key = root.join("verifier.key");
    let (verifier, url) = Background::start(
        &[
            "verifier",
            "serve",
            "--db",
            &db,
            "--listen",
            "127.0.0.1:0",
            "--keys",
            &s(&keys),
            "--identity",
            &s(&verifier_key),
            "--log-format",
            "json",
            "--metrics",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ],
        "verifier node listening on",
        Some(&root.join("verifier.log")),
    );
    let (mut verifier, url) = (verifier, url);
    let node_metrics = verifier.line("metrics:");
    let status_page = verifier.line("status page:");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    // Not funded: OpenJob is refused and the command says why.
    let out = matproof(&["prover", "run", "--verifier", &url, "--job", &s(&job)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("OpenJob"), "{}", text(&out));

    let funded = ok(&["verifier", "fund", "--db", &db, "--account", &consumer, "--amount", "1000"]);
    assert!(funded.contains("balance 1000"), "{funded}");
    ok(&["verifier", "fund", "--db", &db, "--account", &stake, "--amount", "500"]);

    let receipt = root.join("job.receipt");
    let provider_c = root.join("provider-c.npy");
    let run = ok(&[
        "prover",
        "run",
        "--verifier",
        &url,
        "--job",
        &s(&job),
        "--receipt",
        &s(&receipt),
        "--out",
        &s(&provider_c),
    ]);
    assert!(run.lines().any(|l| l == "verdict: approved"), "{run}");
    assert!(run.contains("result: checked, written to"), "{run}");
    assert!(provider_c.exists());
    let job_id = field(&run, "job_id:");
    assert_eq!(job_id.len(), 64);

    let status = ok(&["job", "status", "--verifier", &url, "--job-id", &job_id]);
    assert_eq!(field(&status, "state:"), "approved", "{status}");
    assert_eq!(field(&status, "escrow:"), "posted", "{status}");

    let audit = ok(&[
        "audit",
        &s(&receipt),
        "--keys",
        &s(&keys),
        "--a",
        &s(&root.join("a.npy")),
        "--b",
        &s(&root.join("b.npy")),
    ]);
    assert!(audit.contains("approved"), "{audit}");

    // The sidecar as a service, pinned to the verifier's key, and a consumer that opens a job
    // and submits it there.
    let seed: [u8; 32] = std::fs::read(&verifier_key).unwrap().try_into().unwrap();
    let verifier_public = hex::encode(matproof_protocol::identity::Identity::from_seed(seed).public_key().0);
    let provider_key = root.join("provider.key");
    let (sidecar, sidecar_url) = Background::start(
        &[
            "prover",
            "serve",
            "--verifier",
            &url,
            "--verifier-key",
            &verifier_public,
            "--listen",
            "127.0.0.1:0",
            "--keys",
            &s(&keys),
            "--identity",
            &s(&provider_key),
            "--log-format",
            "json",
            "--metrics",
            "127.0.0.1:0",
        ],
        "prover sidecar listening on",
        Some(&root.join("sidecar.log")),
    );
    let (mut sidecar, sidecar_url) = (sidecar, sidecar_url);
    let sidecar_metrics = sidecar.line("metrics:");
    let receipt2 = root.join("job2.receipt");
    let opened = ok(&[
        "job",
        "open",
        "--verifier",
        &url,
        "--job",
        &s(&job),
        "--sidecar",
        &sidecar_url,
        "--receipt",
        &s(&receipt2),
        "--out",
        &s(&root.join("c.npy")),
        "--check",
        "freivalds",
    ]);
    assert!(opened.lines().any(|l| l == "verdict: approved"), "{opened}");
    assert!(opened.contains("result: checked"), "{opened}");
    assert!(opened.contains("result: Freivalds passed"), "{opened}");
    // The consumer's C is A·B, exactly.
    let read_i8 = |name: &str| {
        matproof_protocol::npy::read_matrix::<i8, _>(&mut std::fs::File::open(root.join(name)).unwrap()).unwrap()
    };
    let c =
        matproof_protocol::npy::read_matrix::<i32, _>(&mut std::fs::File::open(root.join("c.npy")).unwrap()).unwrap();
    let expected = matproof_protocol::matrix::naive_product(&read_i8("a.npy"), &read_i8("b.npy")).unwrap();
    assert_eq!(c.as_slice(), expected.as_slice());
    let job2 = field(&opened, "job_id:");
    assert_ne!(job2, job_id, "a fresh nonce makes a new job");
    assert!(receipt2.exists());
    let status = ok(&["job", "status", "--verifier", &url, "--job-id", &job2]);
    assert_eq!(field(&status, "escrow:"), "posted", "{status}");

    // The provider's record: both jobs approved, 2 × 250 earned.
    let provider_seed: [u8; 32] = std::fs::read(&provider_key).unwrap().try_into().unwrap();
    let provider_public = hex::encode(matproof_protocol::identity::Identity::from_seed(provider_seed).public_key().0);
    let record = ok(&["provider", "record", "--verifier", &url, "--provider", &provider_public, "--json"]);
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(record["jobs"]["opened"], 2, "{record}");
    assert_eq!(record["jobs"]["approved"], 2, "{record}");
    assert_eq!(record["earned"], 500, "{record}");
    let listed = ok(&["provider", "list", "--verifier", &url]);
    assert!(listed.contains(&provider_public) && listed.contains("1 of 1 providers"), "{listed}");
    let unknown = matproof(&["provider", "record", "--verifier", &url, "--provider", &"ab".repeat(32)]);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    assert!(text(&unknown).contains("NOT_FOUND"), "{}", text(&unknown));

    // What an operator watches: the metrics of both, the status page.
    let scraped = http_get(&node_metrics);
    assert!(scraped.contains("matproof_node_verdicts_total{verdict=\"approved\"} 2"), "{scraped}");
    let scraped = http_get(&sidecar_metrics);
    assert!(scraped.contains("matproof_sidecar_jobs_total{outcome=\"approved\"} 1"), "{scraped}");
    let page = http_get(status_page.trim_end_matches(" (metrics at /metrics)"));
    assert!(page.contains(&job_id) && page.contains(&job2), "{page}");

    sidecar.stop();
    verifier.stop();
    let seeds =
        [verifier_key, provider_key, root.join("consumer.key")].map(|path| hex::encode(std::fs::read(path).unwrap()));
    check_json_log(&root.join("verifier.log"), "verdict recorded", &job_id, &seeds);
    check_json_log(&root.join("sidecar.log"), "job finished", &job2, &seeds);

    // Two jobs of 250 paid out of 1000, the stake untouched, nothing left in escrow.
    let after = ok(&["verifier", "fund", "--db", &db, "--account", &consumer, "--amount", "1"]);
    assert!(after.contains("balance 501"), "{after}");
}

/// The body of `GET url` (`http://HOST:PORT/PATH`), over a plain TCP stream; panics unless
/// the answer is 200.
fn http_get(url: &str) -> String {
    use std::io::{Read as _, Write as _};
    let rest = url.strip_prefix("http://").unwrap_or_else(|| panic!("not an http URL: {url}"));
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let path = if path.is_empty() { "/".to_string() } else { path };
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no head: {answer}"));
    assert!(head.starts_with("HTTP/1.1 200 "), "GET {url}: {head}");
    body.to_string()
}

/// Every log line that `--log-format json` wrote parses as JSON; one with `message` names
/// `job_id` in its span; no line holds any of the identity seeds (in hex).
fn check_json_log(path: &Path, message: &str, job_id: &str, seeds: &[String]) {
    let log = std::fs::read_to_string(path).unwrap();
    let mut found = false;
    for line in log.lines().filter(|l| l.starts_with('{')) {
        let event: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(event["level"].is_string() && event["timestamp"].is_string(), "{line}");
        found |= event["fields"]["message"] == message && event["span"]["job_id"] == job_id;
        for seed in seeds {
            assert!(!line.contains(seed.as_str()), "an identity seed in the log: {line}");
        }
    }
    assert!(found, "no {message:?} event in the span of job {job_id} in {}:\n{log}", path.display());
}
