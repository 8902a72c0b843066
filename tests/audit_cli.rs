//! `matproof audit` on real files: an honest receipt passes (text ending `audit: ok`, or
//! JSON), with keys from a directory, the default cache or one file, and with data; a
//! corrupted receipt, an untrusted verifier or mismatching data exit 1; a missing key or
//! receipt exits 2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use matproof_circuits::TileVerifyingKey;
use matproof_protocol::identity::Identity;
use matproof_protocol::ids::Seed;
use matproof_protocol::matrix::{MatrixI8, MatrixI32};
use matproof_protocol::npy::write_matrix_file;
use matproof_protocol::receipt::{PURPOSE_JOB, RECEIPT_VERSION, Receipt, SignedChallenge, SignedVerdict, Verdict};
use matproof_protocol::spec::{JobSpec, Policy, VerificationMode};
use matproof_protocol::tiling::CircuitShape;
use matproof_protocol::transcript::Challenge;
use matproof_protocol::wire::encode_receipt;
use matproof_testkit::{identity, spec_of};
use matproof_verifier::check_summary;

const SHAPE: CircuitShape = CircuitShape { tm: 4, tn: 4, kc: 24 };
const M: usize = 17;
const K: usize = 24;
const N: usize = 22;

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    verifier: Identity,
}

impl Fixture {
    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn s(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

/// An honest succinct-mode job, approved by one verifier, written out as `receipt.pb`
/// with its data (`a.npy`, `b.npy`, `c.npy`) and its verifying key in `keys/` under the
/// name `matproof setup` gives it.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let (pk, vk) = matproof_testkit::dev_keys(SHAPE);
    std::fs::create_dir_all(root.join("keys")).unwrap();
    vk.write(&root.join(format!("keys/tile-{}x{}-k{}.vk", SHAPE.tm, SHAPE.tn, SHAPE.kc))).unwrap();
    vk.write(&root.join("only.vk")).unwrap();

    let job = matproof_testkit::honest_job(M, K, N, SHAPE);
    let (a, b, c): (MatrixI8, MatrixI8, MatrixI32) = (job.a.clone(), job.b.clone(), job.execution.c.clone());
    let (consumer, provider, verifier) = (identity(1), identity(2), identity(3));
    let standard = spec_of(&job, VerificationMode::Succinct, 3);
    let policy = Policy { target_fraud_ppm: 10_000, ..standard.policy };
    let spec = JobSpec { policy, price: 7, slash_amount: 9, nonce: vec![5], ..standard };
    let job_id = spec.job_id();
    let r_c = job.execution.c_tree.root();
    let challenge = Challenge { job_id, r_c, seed: Seed([8; 32]) };
    let openings = job.respond(pk, &challenge, 3, 2).unwrap();
    let (commit_signature, response_end) =
        matproof_testkit::provider_signatures(&spec, r_c, None, &openings, &provider);
    let receipt = Receipt {
        version: RECEIPT_VERSION,
        consumer_signature: consumer.sign(PURPOSE_JOB, &spec.canonical_bytes()),
        r_c,
        commit_signature,
        response_end,
        challenge: SignedChallenge::sign(challenge, &verifier),
        openings,
        summary: check_summary(&spec).unwrap(),
        verdicts: vec![SignedVerdict::sign(job_id, r_c, Verdict::Approved, "all checks passed", &verifier)],
        fraud_proof: None,
        spec,
    };
    std::fs::write(root.join("receipt.pb"), encode_receipt(&receipt)).unwrap();
    write_matrix_file(&root.join("a.npy"), &a).unwrap();
    write_matrix_file(&root.join("b.npy"), &b).unwrap();
    write_matrix_file(&root.join("c.npy"), &c).unwrap();
    let mut wrong = c.clone();
    wrong.as_mut_slice()[3] += 1;
    write_matrix_file(&root.join("wrong_c.npy"), &wrong).unwrap();
    let _: &TileVerifyingKey = vk;
    Fixture { _dir: dir, root, verifier }
}

fn matproof(args: &[&str], cache: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_matproof"));
    command.args(args);
    if let Some(cache) = cache {
        command.env("XDG_CACHE_HOME", cache);
    }
    command.output().expect("run matproof")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn text(out: &Output) -> String {
    format!("{}{}", stdout(out), String::from_utf8_lossy(&out.stderr))
}

fn assert_fails(out: &Output, code: i32, needle: &str) {
    let message = text(out);
    assert_eq!(out.status.code(), Some(code), "{message}");
    assert!(message.contains(needle), "expected {needle:?} in {message}");
    assert!(!message.contains("audit: ok") && !message.contains("panicked"), "{message}");
}

#[test]
fn an_honest_receipt_passes_with_text_json_and_data() {
    let f = fixture();
    let out = matproof(&["audit", &f.s("receipt.pb"), "--keys", &f.s("keys")], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let printed = stdout(&out);
    assert!(printed.lines().any(|l| l == "audit: ok"), "{printed}");
    assert_eq!(printed.lines().last(), Some("audit: ok"));
    for needle in ["verdict: approved", "mode:    succinct", "[  ok] openings", "3 of 30 tiles", "bounds:", "2^-"] {
        assert!(printed.contains(needle), "{needle:?} in {printed}");
    }
    assert!(printed.contains("no trusted verifier set given"), "{printed}");

    // The default key directory is the cache: $XDG_CACHE_HOME/matproof/keys.
    let cache = f.path("cache");
    std::fs::create_dir_all(cache.join("matproof")).unwrap();
    std::fs::rename(f.path("keys"), cache.join("matproof/keys")).unwrap();
    let out = matproof(&["audit", &f.s("receipt.pb")], Some(&cache));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // JSON, one key file, a trusted verifier, all the data.
    let key = hex::encode(f.verifier.public_key().0);
    let args = [
        "audit",
        &f.s("receipt.pb"),
        "--vk",
        &f.s("only.vk"),
        "--trusted-verifier",
        &key,
        "--a",
        &f.s("a.npy"),
        "--b",
        &f.s("b.npy"),
        "--c",
        &f.s("c.npy"),
        "--json",
    ];
    let out = matproof(&args, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["verdict"], "approved");
    assert_eq!(v["mode"], "succinct");
    assert_eq!(v["verifiers_pinned"], true);
    assert_eq!(v["bounds"]["tiles"], 30);
    assert_eq!(v["bounds"]["audit_freivalds_error_log2"], -122);
    assert_eq!(v["rejection"], serde_json::Value::Null);
    let names: Vec<&str> = v["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names.last(), Some(&"data-freivalds"));
    assert!(v["checks"].as_array().unwrap().iter().all(|c| c["passed"] == true));
}

#[test]
fn bad_receipts_and_data_exit_1_and_missing_inputs_exit_2() {
    let f = fixture();
    let keys = f.s("keys");
    // An untrusted verifier.
    let other = hex::encode(Identity::from_seed([9; 32]).public_key().0);
    let out = matproof(&["audit", &f.s("receipt.pb"), "--keys", &keys, "--trusted-verifier", &other], None);
    assert_fails(&out, 1, "not a trusted verifier");
    let out = matproof(&["audit", &f.s("receipt.pb"), "--keys", &keys, "--trusted-verifier", &other, "--json"], None);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!((v["ok"].clone(), v["kind"].clone()), (false.into(), "UntrustedVerifier".into()));
    // A wrong C (data that does not match R_C).
    let args = ["audit", &f.s("receipt.pb"), "--keys", &keys, "--a", &f.s("a.npy"), "--b", &f.s("b.npy")];
    let mut with_c = args.to_vec();
    let wrong = f.s("wrong_c.npy");
    with_c.extend(["--c", &wrong]);
    assert_fails(&matproof(&with_c, None), 1, "does not match the commitments: R_C");
    let swapped = ["audit", &f.s("receipt.pb"), "--keys", &keys, "--a", &f.s("b.npy"), "--b", &f.s("a.npy")];
    assert_fails(&matproof(&swapped, None), 1, "data");
    // A corrupted receipt: one flipped bit in the middle (an opening), and garbage.
    let mut bytes = std::fs::read(f.path("receipt.pb")).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(f.path("flipped.pb"), &bytes).unwrap();
    assert_fails(&matproof(&["audit", &f.s("flipped.pb"), "--keys", &keys], None), 1, "audit failed");
    std::fs::write(f.path("garbage.pb"), b"not a receipt").unwrap();
    assert_fails(&matproof(&["audit", &f.s("garbage.pb"), "--keys", &keys], None), 1, "does not decode");
    // No key with the pinned hash, no receipt, a bad key argument: the audit cannot run.
    std::fs::create_dir_all(f.path("empty")).unwrap();
    assert_fails(&matproof(&["audit", &f.s("receipt.pb"), "--keys", &f.s("empty")], None), 2, "looked in");
    assert_fails(&matproof(&["audit", &f.s("missing.pb"), "--keys", &keys], None), 2, "missing.pb");
    let out = matproof(&["audit", &f.s("receipt.pb"), "--keys", &keys, "--trusted-verifier", "zz"], None);
    assert_fails(&out, 2, "not hex");
}
