//! `matproof provider record|list`: providers' records (DESIGN §10) from a verifier node, as a
//! table for a person or JSON for a program.

use std::process::ExitCode;

use anyhow::Result;
use matproof_client::{Peer, list_providers, provider_record};
use matproof_protocol::records::{DurationStats, ProviderRecord};
use serde_json::json;

use crate::job::{parse_public_key, runtime};
use crate::tls_args::TlsArgs;

/// `matproof provider …`
#[derive(clap::Subcommand, Debug)]
pub enum ProviderCommand {
    /// One provider's record: jobs by outcome, amounts, times, score.
    Record {
        /// The verifier node.
        #[arg(long)]
        verifier: String,
        /// The provider's public key (64 hex digits).
        #[arg(long)]
        provider: String,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// TLS to the verifier (an `https://` URL).
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// The network's providers, best score first.
    List {
        /// The verifier node.
        #[arg(long)]
        verifier: String,
        /// How many of the best to skip.
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// How many to show (at most 100).
        #[arg(long, default_value_t = 20)]
        page_size: u32,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// TLS to the verifier (an `https://` URL).
        #[command(flatten)]
        tls: TlsArgs,
    },
}

/// Runs a `matproof provider` command.
pub fn dispatch(command: ProviderCommand) -> Result<ExitCode> {
    match command {
        ProviderCommand::Record { verifier, provider, json, tls } => {
            let provider = parse_public_key("--provider", &provider)?;
            let peer = tls.peer(&verifier)?;
            let record = runtime()?.block_on(provider_record(peer, &provider))?;
            match json {
                true => println!("{}", record_json(&record)),
                false => print_record(&record),
            }
            Ok(ExitCode::SUCCESS)
        }
        ProviderCommand::List { verifier, offset, page_size, json, tls } => {
            let peer: Peer = tls.peer(&verifier)?;
            let (records, total) = runtime()?.block_on(list_providers(peer, offset, page_size))?;
            match json {
                true => {
                    let providers: Vec<_> = records.iter().map(record_json).collect();
                    println!("{}", json!({ "total": total, "offset": offset, "providers": providers }));
                }
                false => print_list(&records, offset, total),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn stats_json(d: &DurationStats) -> serde_json::Value {
    json!({ "jobs": d.jobs, "median_ms": d.median_ms, "p95_ms": d.p95_ms })
}

fn record_json(r: &ProviderRecord) -> serde_json::Value {
    let c = &r.counts;
    json!({
        "provider": r.provider.to_hex(),
        "score": r.score,
        "jobs": {
            "opened": c.opened, "approved": c.approved, "rejected_fraud": c.rejected_fraud,
            "rejected_other": c.rejected_other, "expired": c.expired, "in_flight": c.in_flight,
        },
        "earned": r.earned,
        "slashed": r.slashed,
        "open_to_commit": stats_json(&r.open_to_commit),
        "challenge_to_verdict": stats_json(&r.challenge_to_verdict),
        "first_seen_unix_ms": r.first_seen_unix_ms,
        "last_seen_unix_ms": r.last_seen_unix_ms,
    })
}

fn stats_text(d: &DurationStats) -> String {
    match d.jobs {
        0 => "no job yet".to_string(),
        jobs => format!("median {} ms, p95 {} ms (latest {jobs} jobs)", d.median_ms, d.p95_ms),
    }
}

fn print_record(r: &ProviderRecord) {
    let c = &r.counts;
    println!("provider:             {}", r.provider.to_hex());
    println!("score:                {:.4}", r.score);
    println!("jobs opened:          {}", c.opened);
    println!("  approved:           {}", c.approved);
    println!("  rejected, fraud:    {}", c.rejected_fraud);
    println!("  rejected, other:    {}", c.rejected_other);
    println!("  expired:            {}", c.expired);
    println!("  in flight:          {}", c.in_flight);
    println!("earned:               {}", r.earned);
    println!("slashed:              {}", r.slashed);
    println!("open → commit:        {}", stats_text(&r.open_to_commit));
    println!("challenge → verdict:  {}", stats_text(&r.challenge_to_verdict));
    println!("first seen:           {} ms since the epoch", r.first_seen_unix_ms);
    println!("last seen:            {} ms since the epoch", r.last_seen_unix_ms);
}

fn print_list(records: &[ProviderRecord], offset: u64, total: u64) {
    println!(
        "{:<4} {:<64} {:>7} {:>7} {:>8} {:>6} {:>7} {:>9}",
        "rank", "provider", "score", "jobs", "approved", "fraud", "expired", "earned"
    );
    for (i, r) in records.iter().enumerate() {
        let c = &r.counts;
        println!(
            "{:<4} {:<64} {:>7.4} {:>7} {:>8} {:>6} {:>7} {:>9}",
            offset + i as u64 + 1,
            r.provider.to_hex(),
            r.score,
            c.opened,
            c.approved,
            c.rejected_fraud,
            c.expired,
            r.earned
        );
    }
    println!("{} of {total} providers", records.len());
}
