//! Job files, identity files and key directories shared by `matproof job`, `matproof prover`
//! and `matproof verifier`; and `matproof job open|status|accounts`.
//!
//! A job file (`job.toml`, format in `docs/node.md`) names the inputs, the circuit shape, the
//! policy, the price and the identity files of the consumer and the provider. Paths in it are
//! relative to the file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use matproof_circuits::{TileProvingKey, TileVerifyingKey};
use matproof_client::{JobOptions, JobTerms, Peer, job_status, parse_mode};
pub use matproof_client::{consumer_spec, open_job, submit_job};
use matproof_protocol::identity::{Identity, PublicKey, Signature};
use matproof_protocol::ids::{JobId, VkHash};
use matproof_protocol::matrix::{MatrixI8, MatrixI32};
use matproof_protocol::spec::{InputScheme, JobSpec};
use matproof_protocol::tiling::CircuitShape;
use matproof_protocol::wire::pb;
use matproof_verifier::service::accounts::{consumer_account, provider_account, stake_account};
use serde::Deserialize;

use crate::commands::{parse_tile, read_i8};
use crate::setup::{default_key_dir, key_paths};
use crate::tls_args::TlsArgs;

/// A new multi-threaded tokio runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the tokio runtime")
}

/// Reads a 32-byte identity seed from `path`, or creates one (mode 0600) if the file does
/// not exist. Returns the identity and whether it was created.
pub fn load_or_create_identity(path: &Path) -> Result<(Identity, bool)> {
    Ok(matproof_client::load_or_create_identity(path)?)
}

/// Every key file of one kind (`pk` or `vk`) in `dir`, sorted by name.
fn key_files(dir: &Path, extension: &str) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading key directory {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    Ok(files)
}

/// Every proving key (`*.pk`) in `dir`; an error if there is none.
pub fn load_proving_keys(dir: &Path) -> Result<Vec<TileProvingKey>> {
    let keys = key_files(dir, "pk")?
        .iter()
        .map(|p| TileProvingKey::read_cached(p).map(|(key, _)| key).with_context(|| format!("reading {}", p.display())))
        .collect::<Result<Vec<_>>>()?;
    if keys.is_empty() {
        bail!("no proving key (*.pk) in {}: make one with `matproof setup --out {}`", dir.display(), dir.display());
    }
    Ok(keys)
}

/// Every verifying key (`*.vk`) in `dir`; an error if there is none.
pub fn load_verifying_keys(dir: &Path) -> Result<Vec<TileVerifyingKey>> {
    let keys = key_files(dir, "vk")?
        .iter()
        .map(|p| TileVerifyingKey::read(p).with_context(|| format!("reading {}", p.display())))
        .collect::<Result<Vec<_>>>()?;
    if keys.is_empty() {
        bail!("no verifying key (*.vk) in {}: make one with `matproof setup --out {}`", dir.display(), dir.display());
    }
    Ok(keys)
}

/// Policy defaults: 2 Freivalds rounds, 1 verifier, 1% target fraud fraction, 10 minutes.
fn default_rounds() -> u32 {
    2
}
fn default_quorum() -> u32 {
    1
}
fn default_target_fraud_ppm() -> u32 {
    10_000
}
fn default_deadline_secs() -> u64 {
    600
}
fn default_mode() -> String {
    "full".into()
}

/// A job file (`job.toml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    /// `A` (m×k, i8 .npy).
    pub a: PathBuf,
    /// `B` (k×n, i8 .npy).
    pub b: PathBuf,
    /// Tile shape `TMxTN`.
    pub tile: String,
    /// Circuit depth (default: k).
    pub kc: Option<usize>,
    /// `full` or `succinct`.
    #[serde(default = "default_mode")]
    pub mode: String,
    /// Sampled tiles (0: full mode without tile proofs, which needs no keys).
    pub samples: u32,
    /// `poseidon` or `sha256` (default: `sha256` when `samples = 0`, else `poseidon`).
    pub input_scheme: Option<String>,
    /// Freivalds rounds (full mode).
    #[serde(default = "default_rounds")]
    pub freivalds_rounds: u32,
    /// Verifier approvals needed.
    #[serde(default = "default_quorum")]
    pub quorum: u32,
    /// The fraud fraction the receipt states a bound for, parts per million.
    #[serde(default = "default_target_fraud_ppm")]
    pub target_fraud_ppm: u32,
    /// Seconds from opening to the response deadline.
    #[serde(default = "default_deadline_secs")]
    pub deadline_secs: u64,
    /// Price, in the ledger's smallest unit.
    pub price: u64,
    /// Stake slashed on a proven fraud.
    #[serde(default)]
    pub slash_amount: u64,
    /// The consumer's identity file (32-byte seed; created if missing).
    pub consumer_identity: PathBuf,
    /// The provider's identity file (needed by `prover run`; `job open` needs only the
    /// public key).
    pub provider_identity: Option<PathBuf>,
    /// The provider's public key, hex (instead of its identity file).
    pub provider_public_key: Option<String>,
    /// Directory with the key files for the tile shape (default: the user key cache).
    pub keys: Option<PathBuf>,
}

/// A job file read, with its inputs loaded and paths resolved.
pub struct LoadedJob {
    /// The file as written.
    pub file: JobFile,
    /// `A`.
    pub a: MatrixI8,
    /// `B`.
    pub b: MatrixI8,
    /// The consumer.
    pub consumer: Identity,
    /// The provider's identity, if the file names one.
    pub provider: Option<Identity>,
    /// The provider's public key.
    pub provider_key: PublicKey,
    /// The key directory.
    pub key_dir: PathBuf,
    /// The circuit shape.
    pub shape: CircuitShape,
}

fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() { path.to_path_buf() } else { base.join(path) }
}

/// A 32-byte public key in hex; `what` names the field or flag in errors.
pub fn parse_public_key(what: &str, text: &str) -> Result<PublicKey> {
    PublicKey::from_hex(text).with_context(|| format!("{what} {text:?}"))
}

impl LoadedJob {
    /// Reads `path` and everything it names (identity files are created if missing).
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading job file {}", path.display()))?;
        let file: JobFile = toml::from_str(&text).with_context(|| format!("parsing job file {}", path.display()))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let a = read_i8(&resolve(&base, &file.a))?;
        let b = read_i8(&resolve(&base, &file.b))?;
        let (tm, tn) = parse_tile(&file.tile)?;
        let shape = CircuitShape { tm, tn, kc: file.kc.unwrap_or(a.cols()) };
        let (consumer, _) = load_or_create_identity(&resolve(&base, &file.consumer_identity))?;
        let provider = match &file.provider_identity {
            Some(p) => Some(load_or_create_identity(&resolve(&base, p))?.0),
            None => None,
        };
        let provider_key = match (&provider, &file.provider_public_key) {
            (Some(id), Some(hex_key)) => {
                let named = parse_public_key("provider_public_key", hex_key)?;
                anyhow::ensure!(named == id.public_key(), "provider_public_key does not match provider_identity");
                named
            }
            (Some(id), None) => id.public_key(),
            (None, Some(hex_key)) => parse_public_key("provider_public_key", hex_key)?,
            (None, None) => bail!("the job file names neither provider_identity nor provider_public_key"),
        };
        let key_dir = file.keys.as_ref().map(|k| resolve(&base, k)).unwrap_or_else(default_key_dir);
        Ok(Self { file, a, b, consumer, provider, provider_key, key_dir, shape })
    }

    /// The verifying key for the job's shape, from the key directory.
    pub fn verifying_key(&self) -> Result<TileVerifyingKey> {
        let (_, vk_path) = key_paths(&self.key_dir, self.shape);
        TileVerifyingKey::read(&vk_path).with_context(|| {
            format!(
                "reading {} (make keys with `matproof setup --tile {}x{} --k {} --out {}`)",
                vk_path.display(),
                self.shape.tm,
                self.shape.tn,
                self.shape.kc,
                self.key_dir.display()
            )
        })
    }

    /// The proving key for the job's shape, from the key directory.
    pub fn proving_key(&self) -> Result<TileProvingKey> {
        let (pk_path, _) = key_paths(&self.key_dir, self.shape);
        TileProvingKey::read_cached(&pk_path)
            .map(|(key, _)| key)
            .with_context(|| format!("reading {}", pk_path.display()))
    }

    /// Commits to `A`, `B` and builds the spec (fresh nonce, deadline from now) signed by the
    /// consumer.
    pub fn signed_spec(&self, vk_hash: VkHash) -> Result<(JobSpec, Signature)> {
        let mode = parse_mode(&self.file.mode)?;
        let input_scheme = self.file.input_scheme.as_deref().map(str::parse::<InputScheme>).transpose()?;
        let options = JobOptions {
            mode,
            samples: self.file.samples,
            input_scheme,
            freivalds_rounds: self.file.freivalds_rounds,
            quorum: self.file.quorum,
            target_fraud_ppm: self.file.target_fraud_ppm,
            deadline: Duration::from_secs(self.file.deadline_secs),
        };
        let policy = options.policy(SystemTime::now())?;
        let terms = JobTerms {
            provider: self.provider_key,
            shape: self.shape,
            vk_hash,
            policy,
            price: self.file.price,
            slash_amount: self.file.slash_amount,
        };
        Ok(consumer_spec(&self.consumer, &terms, &self.a, &self.b)?)
    }
}

/// Writes a receipt's protobuf bytes.
pub fn write_receipt(path: &Path, receipt: &pb::Receipt) -> Result<()> {
    use prost::Message;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, receipt.encode_to_vec()).with_context(|| format!("writing receipt {}", path.display()))
}

/// The verifying-key hash a job file's spec pins: its key's, or none (all zero) for a job
/// without tile proofs.
pub fn pinned_vk_hash(job: &LoadedJob) -> Result<VkHash> {
    match job.file.samples {
        0 => Ok(VkHash([0; 32])),
        _ => Ok(job.verifying_key()?.hash()),
    }
}

/// Where `job open --sidecar` puts what it receives.
#[derive(Debug, Clone, Default)]
pub struct ResultOptions {
    /// The receipt (default `<job id>.receipt`).
    pub receipt: Option<PathBuf>,
    /// `C`, written only after it checked against the approved receipt.
    pub out: Option<PathBuf>,
    /// Also run Freivalds on the received `C` (the consumer has `A`, `B`).
    pub freivalds: bool,
}

/// `matproof job open`: commits to the job file's inputs, signs the spec as the consumer and
/// opens the job on the verifier; with `sidecar`, also submits it to the provider's sidecar,
/// writes the receipt and, with `--out`, the checked result.
pub fn open(verifier: &Peer, job_path: &Path, sidecar: Option<&Peer>, options: &ResultOptions) -> Result<ExitCode> {
    let job = LoadedJob::read(job_path)?;
    let (spec, signature) = job.signed_spec(pinned_vk_hash(&job)?)?;
    let inputs = (Arc::new(job.a), Arc::new(job.b));
    let rt = runtime()?;
    rt.block_on(async {
        let job_id = open_job(verifier, &spec, &signature, &inputs).await?;
        println!("job_id: {job_id}");
        println!("consumer account: {}", consumer_account(&spec.consumer));
        let Some(sidecar) = sidecar else { return Ok(ExitCode::SUCCESS) };
        let submitted = match submit_job(sidecar, &spec, &signature, &inputs).await {
            Ok(submitted) => submitted,
            // A result that does not check (another R_C, a cut stream): exit 1, no output.
            Err(
                error @ (matproof_client::ClientError::Result { .. } | matproof_client::ClientError::ResultCut { .. }),
            ) => {
                eprintln!("error: {error}");
                return Ok(ExitCode::from(1));
            }
            Err(error) => return Err(error.into()),
        };
        let verdict = receipt_verdict(&submitted.receipt)?;
        let path = options.receipt.clone().unwrap_or_else(|| PathBuf::from(format!("{job_id}.receipt")));
        write_receipt(&path, &submitted.receipt)?;
        println!("receipt: {}", path.display());
        println!("verdict: {verdict}");
        deliver_result(&spec, &inputs, submitted.c.as_ref(), options)?;
        Ok(if submitted.approved { ExitCode::SUCCESS } else { ExitCode::from(1) })
    })
}

/// The checked `C` of an approved job: optionally re-checked with Freivalds, then written
/// atomically (`result: checked` once it matched the approved `R_C`).
pub fn deliver_result(
    spec: &JobSpec,
    (a, b): &(Arc<MatrixI8>, Arc<MatrixI8>),
    c: Option<&MatrixI32>,
    options: &ResultOptions,
) -> Result<()> {
    let Some(c) = c else { return Ok(()) };
    println!("result: checked (the received C matches the approved R_C)");
    if options.freivalds {
        matproof_client::check_freivalds(spec, a, b, c, 2)?;
        println!("result: Freivalds passed (2 rounds, the consumer's own vectors)");
    }
    if let Some(out) = &options.out {
        write_npy_atomic(out, c)?;
        println!("result: {}", out.display());
    }
    Ok(())
}

/// Writes `c` as `.npy` to a temporary file beside `path`, then renames it into place: a
/// reader never sees a partial result.
pub fn write_npy_atomic(path: &Path, c: &MatrixI32) -> Result<()> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let name = path.file_name().context("--out names no file")?.to_string_lossy();
    let temporary = parent.join(format!(".{name}.{}.partial", std::process::id()));
    let write = || -> Result<()> {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&temporary)?);
        matproof_protocol::npy::write_matrix(&mut file, c)?;
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&temporary);
        return Err(e.context(format!("writing {}", temporary.display())));
    }
    std::fs::rename(&temporary, path).with_context(|| format!("renaming the result into {}", path.display()))
}

/// The verdict of a receipt, validated.
pub fn receipt_verdict(receipt: &pb::Receipt) -> Result<&'static str> {
    let core = matproof_protocol::receipt::Receipt::try_from(receipt).context("the receipt is malformed")?;
    let first = core.verdicts.first().context("the receipt has no verdict")?;
    Ok(first.verdict.as_str())
}

/// `matproof job status`.
pub fn status(verifier: &Peer, job_id_hex: &str) -> Result<ExitCode> {
    let job_id = JobId::from_hex(job_id_hex).context("--job-id")?;
    let rt = runtime()?;
    rt.block_on(async {
        let status = job_status(verifier, &job_id).await?;
        println!("job_id:   {}", hex::encode(&status.job_id));
        println!("state:    {}", status.state);
        println!("escrow:   {}", status.escrow);
        println!("deadline: {} ms since the epoch", status.deadline_unix_ms);
        if !status.r_c.is_empty() {
            println!("R_C:      {}", hex::encode(&status.r_c));
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `matproof job accounts`: the ledger accounts of the job file's parties (creating missing
/// identity files), so an operator can fund them.
pub fn accounts(job_path: &Path) -> Result<ExitCode> {
    let job = LoadedJob::read(job_path)?;
    println!("consumer: {}", consumer_account(&job.consumer.public_key()));
    println!("provider: {}", provider_account(&job.provider_key));
    println!("stake:    {}", stake_account(&job.provider_key));
    Ok(ExitCode::SUCCESS)
}

/// `matproof job …`.
#[derive(clap::Subcommand, Debug)]
pub enum JobCommand {
    /// Open a job on a verifier as its consumer (prints the job id); with --sidecar, also
    /// submit it to the provider's sidecar, write the receipt and (--out) the checked result.
    Open {
        /// The verifier node, e.g. `https://verifier.example:7001` (`http://` on loopback).
        #[arg(long)]
        verifier: String,
        /// The job file (format: docs/node.md).
        #[arg(long)]
        job: PathBuf,
        /// The provider's sidecar, e.g. `http://127.0.0.1:7002`.
        #[arg(long)]
        sidecar: Option<String>,
        /// Where to write the receipt (with --sidecar; default `<job id>.receipt`).
        #[arg(long)]
        receipt: Option<PathBuf>,
        /// Where to write the result `C` (with --sidecar), as `.npy`: written only after it
        /// checked against the approved receipt's `R_C`.
        #[arg(long)]
        out: Option<PathBuf>,
        /// `root` (the default: `C` must hash to the approved `R_C`) or `freivalds` (also run
        /// Freivalds on `C` against the job's `A`, `B`).
        #[arg(long, default_value = "root", value_parser = ["root", "freivalds"])]
        check: String,
        /// TLS to the verifier and the sidecar (`https://` URLs).
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// Where a job stands on a verifier node.
    Status {
        /// The verifier node.
        #[arg(long)]
        verifier: String,
        /// The job id (64 hex digits).
        #[arg(long)]
        job_id: String,
        /// TLS to the verifier (an `https://` URL).
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// The ledger accounts of a job file's consumer and provider (to fund them).
    Accounts {
        /// The job file.
        #[arg(long)]
        job: PathBuf,
    },
}

/// Runs a `matproof job` command.
pub fn dispatch(command: JobCommand) -> Result<ExitCode> {
    match command {
        JobCommand::Open { verifier, job, sidecar, receipt, out, check, tls } => {
            let options = ResultOptions { receipt, out, freivalds: check == "freivalds" };
            let sidecar = sidecar.map(|url| tls.peer(&url)).transpose()?;
            open(&tls.peer(&verifier)?, &job, sidecar.as_ref(), &options)
        }
        JobCommand::Status { verifier, job_id, tls } => status(&tls.peer(&verifier)?, &job_id),
        JobCommand::Accounts { job } => accounts(&job),
    }
}
