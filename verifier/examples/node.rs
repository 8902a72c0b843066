//! A verifier node for local use and CI: `cargo run --release -p matproof-verifier
//! --features service --example node -- --db sqlite://node.db?mode=rwc --listen
//! 127.0.0.1:0 --print-addr`.
//!
//! Options:
//! * `--db URL` (required): `sqlite://…?mode=rwc` or `postgres://…`.
//! * `--listen ADDR` (default `127.0.0.1:0`).
//! * `--print-addr`: print `listening on http://ADDR` on stdout once serving (the first line).
//! * `--key FILE` (repeatable): a verifying key file (`matproof setup` writes them).
//! * `--dev-key TMxTN:KC` (repeatable): make a development key for that shape at start-up
//!   (single-party setup: for tests only).
//! * `--identity-seed HEX`: the node's Ed25519 seed (32 bytes, hex); default: a fresh one.
//!
//! Runs until SIGINT or SIGTERM, then shuts down gracefully.

use std::process::ExitCode;

use matproof_circuits::{TileVerifyingKey, development_setup};
use matproof_protocol::identity::Identity;
use matproof_protocol::tiling::CircuitShape;
use matproof_verifier::service::{NodeConfig, NodeLimits, start};

fn parse_shape(s: &str) -> Result<CircuitShape, String> {
    let (tile, kc) = s.split_once(':').ok_or("expected TMxTN:KC")?;
    let (tm, tn) = tile.split_once('x').ok_or("expected TMxTN:KC")?;
    let num = |v: &str| v.parse::<usize>().map_err(|e| format!("{v}: {e}"));
    Ok(CircuitShape { tm: num(tm)?, tn: num(tn)?, kc: num(kc)? })
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("node: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut db = None;
    let mut listen = "127.0.0.1:0".to_string();
    let mut print_addr = false;
    let mut keys: Vec<TileVerifyingKey> = Vec::new();
    let mut seed = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--db" => db = Some(value()?),
            "--listen" => listen = value()?,
            "--print-addr" => print_addr = true,
            "--key" => {
                let path = value()?;
                keys.push(TileVerifyingKey::read(std::path::Path::new(&path)).map_err(|e| format!("{path}: {e}"))?);
            }
            "--dev-key" => {
                let shape = parse_shape(&value()?)?;
                let (_, vk) = development_setup(shape, &mut rand::rngs::OsRng).map_err(|e| e.to_string())?;
                keys.push(vk);
            }
            "--identity-seed" => {
                let bytes = hex::decode(value()?).map_err(|e| format!("--identity-seed: {e}"))?;
                seed = Some(<[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| "--identity-seed: 32 bytes")?);
            }
            "--help" | "-h" => {
                println!("usage: node --db URL [--listen ADDR] [--print-addr] [--key FILE]... [--dev-key TMxTN:KC]...");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let db = db.ok_or("--db is required")?;
    let listen = listen.parse().map_err(|e| format!("--listen: {e}"))?;
    let identity = match seed {
        Some(seed) => Identity::from_seed(seed),
        None => Identity::generate().map_err(|e| e.to_string())?,
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let limits = NodeLimits::default();
        let config =
            NodeConfig { listen, database_url: db, identity, verifying_keys: keys, limits, tls: Default::default() };
        let node = start(config).await.map_err(|e| e.to_string())?;
        if print_addr {
            println!("listening on {}", node.url());
        }
        println!("verifier key {}", hex::encode(node.verifier_key().0));
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|e| e.to_string())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        node.shutdown().await;
        Ok(())
    })
}
