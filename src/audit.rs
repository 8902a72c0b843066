//! `matproof audit`: re-check a receipt offline (DESIGN §6) and print what was checked and
//! the bounds, as text (ending `audit: ok`) or JSON.
//!
//! Exit codes: 0 the receipt passes; 1 it fails the audit (it does not decode, a signature,
//! path, proof or bound does not hold, the data does not match); 2 the audit could not run
//! (unreadable file, bad arguments, no verifying key with the pinned hash).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use matproof_circuits::TileVerifyingKey;
use matproof_protocol::identity::PublicKey;
use matproof_protocol::limits::MAX_MESSAGE_BYTES;
use matproof_protocol::spec::{JobSpec, VerificationMode};
use matproof_protocol::wire::decode_receipt;
use matproof_verifier::audit::RejectionGrounds;
use matproof_verifier::{AuditData, AuditError, AuditKeys, AuditReport, audit};
use serde_json::{Value, json};

use crate::commands::{read_i8, read_i32};
use crate::job::parse_public_key;
use crate::setup::{default_key_dir, key_paths};

/// Arguments of `matproof audit`.
#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    /// The receipt: protobuf bytes, as a verifier node stores and serves it.
    pub receipt: PathBuf,
    /// Directory of verifying keys (default: the key cache, ~/.cache/matproof/keys); the key
    /// the job pins is picked by its hash.
    #[arg(long, conflicts_with = "vk")]
    pub keys: Option<PathBuf>,
    /// A verifying key file to use instead of a key directory.
    #[arg(long)]
    pub vk: Option<PathBuf>,
    /// A (m×k, i8 .npy): recompute R_A.
    #[arg(long, requires = "b")]
    pub a: Option<PathBuf>,
    /// B (k×n, i8 .npy): recompute R_B.
    #[arg(long, requires = "a")]
    pub b: Option<PathBuf>,
    /// C (m×n, i32 .npy): recompute R_C and run Freivalds (needs --a and --b).
    #[arg(long, requires = "a")]
    pub c: Option<PathBuf>,
    /// A verifier public key (64 hex digits) trusted to challenge and sign verdicts; repeat
    /// for several. Without one, any signer is accepted, and the output says so.
    #[arg(long = "trusted-verifier", value_name = "HEX")]
    pub trusted_verifiers: Vec<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Where the verifying key comes from.
#[derive(Debug, Clone, Copy)]
pub enum KeySource<'a> {
    /// A key directory (laid out as `matproof setup` writes it).
    Dir(&'a Path),
    /// One key file.
    File(&'a Path),
}

/// Audits the receipt in `path` with the verifying keys in `keys_dir` (default: the key
/// cache), the trusted verifier keys (empty: any) and optional data. `Err` on any failure;
/// an audit failure is an [`AuditError`] inside the `anyhow::Error` (`downcast_ref`).
pub fn audit_receipt_file(
    path: &Path,
    keys_dir: Option<&Path>,
    trusted: &[PublicKey],
    data: Option<&AuditData>,
) -> Result<AuditReport> {
    let dir = keys_dir.map_or_else(default_key_dir, Path::to_path_buf);
    audit_file(path, KeySource::Dir(&dir), trusted, data)
}

/// Like [`audit_receipt_file`], with the key source spelled out.
pub fn audit_file(
    path: &Path,
    keys: KeySource<'_>,
    trusted: &[PublicKey],
    data: Option<&AuditData>,
) -> Result<AuditReport> {
    let bytes = read_receipt_bytes(path)?;
    let receipt =
        decode_receipt(&bytes).map_err(AuditError::from).with_context(|| format!("auditing {}", path.display()))?;
    let (verifying_keys, looked) = load_keys(keys, &receipt.spec)?;
    let mut audit_keys = AuditKeys::new(verifying_keys);
    if !trusted.is_empty() {
        audit_keys = audit_keys.with_trusted_verifiers(trusted.iter().copied());
    }
    audit(&receipt, &audit_keys, data).map_err(|e| {
        let hint = matches!(e, AuditError::NoVerifyingKey { .. })
            .then(|| format!(" (looked in {looked}; pass --vk FILE or --keys DIR)"))
            .unwrap_or_default();
        anyhow::Error::new(e).context(format!("auditing {}{hint}", path.display()))
    })
}

fn read_receipt_bytes(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut bytes = Vec::new();
    // Read at most one byte past the limit, so an oversized file is refused, not loaded.
    file.take(MAX_MESSAGE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(bytes)
}

/// The verifying keys to offer the audit: the shape's key file in a directory (and any
/// other key there with the pinned hash), or the one file given. Unreadable files are
/// reported on stderr and skipped: the audit says which key it missed.
fn load_keys(source: KeySource<'_>, spec: &JobSpec) -> Result<(Vec<TileVerifyingKey>, String)> {
    if !spec.needs_proofs() {
        return Ok((Vec::new(), "none needed (samples = 0: no tile proofs)".into()));
    }
    match source {
        KeySource::File(path) => {
            let vk = TileVerifyingKey::read(path).with_context(|| format!("reading {}", path.display()))?;
            Ok((vec![vk], path.display().to_string()))
        }
        KeySource::Dir(dir) => {
            let (_, expected) = key_paths(dir, spec.shape);
            let mut keys: Vec<TileVerifyingKey> = Vec::new();
            if expected.is_file() {
                keys.extend(read_vk(&expected));
            }
            if !keys.iter().any(|k| k.hash() == spec.vk_hash)
                && let Ok(entries) = std::fs::read_dir(dir)
            {
                for entry in entries.flatten() {
                    let path = entry.path();
                    if path != expected && path.extension().is_some_and(|e| e == "vk") {
                        keys.extend(read_vk(&path));
                    }
                }
            }
            keys.retain(|k| k.hash() == spec.vk_hash);
            Ok((keys, format!("{} for {}", dir.display(), expected.display())))
        }
    }
}

fn read_vk(path: &Path) -> Option<TileVerifyingKey> {
    TileVerifyingKey::read(path).map_err(|e| eprintln!("warning: skipping {}: {e}", path.display())).ok()
}

/// `matproof audit`.
pub fn run(args: &AuditArgs) -> Result<ExitCode> {
    let trusted =
        args.trusted_verifiers.iter().map(|t| parse_public_key("--trusted-verifier", t)).collect::<Result<Vec<_>>>()?;
    let data = match (&args.a, &args.b) {
        (Some(a), Some(b)) => {
            let c = args.c.as_deref().map(read_i32).transpose()?;
            Some(AuditData { a: read_i8(a)?, b: read_i8(b)?, c })
        }
        (None, None) => None,
        _ => bail!("--a and --b go together"),
    };
    let result = match (&args.vk, &args.keys) {
        (Some(vk), _) => audit_file(&args.receipt, KeySource::File(vk), &trusted, data.as_ref()),
        (None, dir) => audit_receipt_file(&args.receipt, dir.as_deref(), &trusted, data.as_ref()),
    };
    match result {
        Ok(report) => {
            if args.json {
                println!("{}", report_json(&report));
            } else {
                print!("{report}");
            }
            if report.approval_unverifiable {
                // The audit could not re-check what the approval rests on (exit 2, as for a
                // missing key): not a failure, not an ok.
                eprintln!("audit: cannot re-check C without the data (samples = 0): pass --a, --b and --c");
                return Ok(ExitCode::from(2));
            }
            if !args.json {
                println!("audit: ok");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            // A missing key means the audit could not run (exit 2), not that it failed.
            let Some(audit_error) =
                error.downcast_ref::<AuditError>().filter(|e| !matches!(e, AuditError::NoVerifyingKey { .. }))
            else {
                return Err(error);
            };
            if args.json {
                println!("{}", json!({ "ok": false, "error": format!("{error:#}"), "kind": kind(audit_error) }));
            }
            eprintln!("error: audit failed: {error:#}");
            Ok(ExitCode::from(1))
        }
    }
}

/// The variant name of an audit error (`Quorum`, `Openings`, ...).
fn kind(error: &AuditError) -> String {
    let debug = format!("{error:?}");
    debug.split(|c: char| !c.is_alphanumeric()).next().unwrap_or_default().to_string()
}

/// The report as JSON (built here: the library stays free of serde).
pub fn report_json(report: &AuditReport) -> Value {
    let b = &report.bounds;
    let rejection = report.rejection.as_ref().map(|r| {
        let mut v = match r {
            RejectionGrounds::FraudProven { row, col } => json!({ "grounds": "fraud_proven", "row": row, "col": col }),
            RejectionGrounds::OpeningsFail { detail } => json!({ "grounds": "openings_fail", "detail": detail }),
            RejectionGrounds::DataShowsWrongC { row } => json!({ "grounds": "data_shows_wrong_c", "row": row }),
            RejectionGrounds::StreamedCNotCommitted => json!({ "grounds": "streamed_c_not_committed" }),
            RejectionGrounds::NotIndependentlyCheckable { reasons } => {
                json!({ "grounds": "not_independently_checkable", "reasons": reasons })
            }
        };
        v["text"] = json!(r.to_string());
        v
    });
    json!({
        "ok": true,
        "job_id": hex::encode(report.job_id),
        "r_c": hex::encode(report.r_c),
        "mode": match report.mode { VerificationMode::Full => "full", VerificationMode::Succinct => "succinct" },
        "verdict": report.verdict.as_str(),
        "checks": report.checks.iter().map(|c| json!({
            "name": c.name,
            "outcome": match c.outcome {
                matproof_verifier::audit::Outcome::Passed => "passed",
                matproof_verifier::audit::Outcome::Failed => "failed",
                matproof_verifier::audit::Outcome::Skipped => "skipped",
            },
            "passed": c.passed(),
            "detail": c.detail,
        })).collect::<Vec<_>>(),
        "bounds": {
            "tiles": b.tiles,
            "samples": b.samples,
            "escape_one_wrong_tile": b.escape_one_wrong_tile,
            "policy_fraction": b.policy_fraction,
            "escape_policy_fraction": b.escape_policy_fraction,
            "tile_identity_error_log2": b.tile_identity_error_log2,
            "verifier_freivalds_rounds": b.verifier_freivalds_rounds,
            "verifier_freivalds_error_log2":
                (b.verifier_freivalds_exponent > 0).then(|| -i64::from(b.verifier_freivalds_exponent)),
            "audit_freivalds_rounds": b.audit_freivalds_rounds,
            "audit_freivalds_error_log2": b.audit_freivalds_exponent.map(|e| -i64::from(e)),
        },
        "challenge_signer": hex::encode(report.challenge_signer.0),
        "verdict_signers": report.verdict_signers.iter().map(|k| hex::encode(k.0)).collect::<Vec<_>>(),
        "verifiers_pinned": report.verifiers_pinned,
        "verifying_key": report.verifying_key.as_ref().map(|(hash, origin)| json!({
            "hash": hex::encode(hash),
            "origin": origin,
        })),
        "rejection": rejection,
        "rejection_unverifiable": report.rejection_unverifiable,
        "approval_unverifiable": report.approval_unverifiable,
    })
}
