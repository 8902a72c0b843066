//! Load against one verifier node on loopback (issue #6, item 5): `cargo run --release -p
//! matproof-verifier --features service --example load -- --clients 8 --jobs-per-client 4`.
//!
//! Starts a node (SQLite in a temp dir, a development key for an 8×16×6 job on 2×2 tiles,
//! kc 16, 2 samples), then N concurrent in-process provider clients, each with its own gRPC
//! connection, a funded consumer and a provider identity. Per job: OpenJob, Commit, prove
//! the sampled tiles (`CommittedJob::respond`, CPU-bound, on `spawn_blocking`), Respond.
//! Latency is measured open → verdict (the provider's execution of the GEMM happens before
//! open and is not counted; proving is). At the end: the ledger's conservation check, every
//! approved job's transfer posted and the provider paid exactly once per job.
//!
//! Options: `--clients N` (default 8), `--jobs-per-client J` (default 4), `--mode
//! succinct|full` (default full). Prints one line of JSON.
#![allow(clippy::too_many_lines)] // long scenarios read top to bottom

// The job, party and node set-up shared with the node tests.
#[cfg(feature = "service")]
#[path = "../tests/support/mod.rs"]
mod support;

#[cfg(feature = "service")]
mod load {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use matproof_protocol::identity::Identity;
    use matproof_protocol::receipt::{SignedChallenge, SignedVerdict, Verdict};
    use matproof_protocol::spec::VerificationMode;
    use matproof_protocol::wire::pb;
    use matproof_verifier::ledger::TransferState;
    use matproof_verifier::service::NodeLimits;
    use matproof_verifier::service::accounts::{consumer_account, provider_account};
    use pb::verifier_client::VerifierClient;
    use tonic::transport::Channel;

    use super::support::{Job, JobParams, Parties, SHAPE, Target, client, far, start_node, vm_kib};

    const M: usize = 8;
    const K: usize = 16;
    const N: usize = 6;
    const SAMPLES: u32 = 2;
    const PRICE: u64 = 1_000;

    /// One job, open → verdict; the latency.
    async fn run_job(
        client: &mut VerifierClient<Channel>,
        job: Arc<Job>,
        provider: &Identity,
    ) -> Result<Duration, String> {
        let started = Instant::now();
        client.open_job(job.open_request()).await.map_err(|e| format!("open: {e}"))?;
        let req = job.commit_request(provider, job.r_c());
        let challenge = client.commit(req).await.map_err(|e| format!("commit: {e}"))?.into_inner();
        let challenge = SignedChallenge::try_from(&challenge).map_err(|e| format!("challenge: {e}"))?;
        challenge.verify().map_err(|e| format!("challenge signature: {e}"))?;
        let proving = job.clone();
        let openings = tokio::task::spawn_blocking(move || proving.openings(&challenge.challenge, 1))
            .await
            .map_err(|e| format!("prove: {e}"))?;
        // All of C in one chunk.
        let stream = job.response(&openings, None, provider, M);
        let verdict = client.respond(tokio_stream::iter(stream)).await.map_err(|e| format!("respond: {e}"))?;
        let verdict = SignedVerdict::try_from(&verdict.into_inner()).map_err(|e| format!("verdict: {e}"))?;
        verdict.verify().map_err(|e| format!("verdict signature: {e}"))?;
        if verdict.verdict != Verdict::Approved {
            return Err(format!("rejected: {}", verdict.reason));
        }
        Ok(started.elapsed())
    }

    fn percentile(sorted: &[Duration], p: f64) -> f64 {
        if sorted.is_empty() {
            return 0.0;
        }
        let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[i].as_secs_f64() * 1e3
    }

    #[tokio::main]
    pub async fn main() {
        let mut clients = 8usize;
        let mut jobs_per_client = 4usize;
        let mut mode = VerificationMode::Full;
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
            match a.as_str() {
                "--clients" => clients = value().parse().expect("--clients N"),
                "--jobs-per-client" => jobs_per_client = value().parse().expect("--jobs-per-client J"),
                "--mode" => {
                    mode = match value().as_str() {
                        "full" => VerificationMode::Full,
                        "succinct" => VerificationMode::Succinct,
                        other => panic!("--mode full|succinct, not {other}"),
                    }
                }
                other => panic!("unknown option {other}"),
            }
        }

        let db = Target::sqlite("node");
        let node = start_node(&db.url, Identity::generate().unwrap(), NodeLimits::default()).await;
        let ledger = node.ledger().clone();

        // Parties and jobs (the provider's GEMM execution) are prepared before the clock starts.
        let params = JobParams {
            m: M,
            k: K,
            n: N,
            mode,
            samples: SAMPLES,
            price: PRICE,
            slash_amount: 0,
            deadline_unix_ms: far(),
        };
        let mut prepared = Vec::new();
        for _ in 0..clients {
            let parties = Arc::new(Parties::funded(&ledger, PRICE * jobs_per_client as u64, 0).await);
            let jobs: Vec<Arc<Job>> = (0..jobs_per_client).map(|_| Arc::new(Job::new(&parties, &params))).collect();
            prepared.push((parties, jobs));
        }

        let started = Instant::now();
        let mut tasks = Vec::new();
        for (parties, jobs) in &prepared {
            let (parties, jobs, url) = (parties.clone(), jobs.clone(), node.url());
            tasks.push(tokio::spawn(async move {
                let mut client = client(url).await;
                let mut out = Vec::new();
                for job in jobs {
                    out.push(run_job(&mut client, job, &parties.provider).await);
                }
                out
            }));
        }
        let mut latencies = Vec::new();
        let mut errors = Vec::new();
        for t in tasks {
            for r in t.await.expect("client task") {
                match r {
                    Ok(d) => latencies.push(d),
                    Err(e) => errors.push(e),
                }
            }
        }
        let elapsed = started.elapsed();
        latencies.sort();

        // Money: conservation, and each approved job released exactly once.
        ledger.conservation_check().await.expect("conservation");
        let mut released_once = true;
        for (parties, jobs) in &prepared {
            let mut posted = 0u64;
            for job in jobs {
                match ledger.transfer(&job.job_id()).await {
                    Ok(t) if t.state == TransferState::Posted => posted += 1,
                    _ => {}
                }
            }
            let paid = ledger.balance(&provider_account(&parties.provider.public_key())).await.unwrap();
            let left = ledger.balance(&consumer_account(&parties.consumer.public_key())).await.unwrap();
            released_once &= paid == posted * PRICE && left == (jobs.len() as u64 - posted) * PRICE;
        }
        let approved = latencies.len();
        node.shutdown().await;
        db.finish().await;

        let first_error = errors.first().map(|e| format!("{e:?}")).unwrap_or_else(|| "null".into());
        let summary = format!(
            concat!(
                "{{\"clients\":{},\"jobs_per_client\":{},\"mode\":\"{}\",",
                "\"job\":\"{}x{}x{}, tile {}x{} kc {}, {} samples\",",
                "\"driver\":\"in-process provider clients over gRPC\",\"jobs\":{},\"approved\":{},",
                "\"errors\":{},\"first_error\":{},\"seconds\":{:.3},\"jobs_per_s\":{:.2},",
                "\"p50_ms\":{:.1},\"p99_ms\":{:.1},\"peak_rss_mib\":{:.1},\"conservation\":\"ok\",",
                "\"approved_released_exactly_once\":{},\"nproc\":{}}}"
            ),
            clients,
            jobs_per_client,
            if mode == VerificationMode::Full { "full" } else { "succinct" },
            M,
            K,
            N,
            SHAPE.tm,
            SHAPE.tn,
            SHAPE.kc,
            SAMPLES,
            clients * jobs_per_client,
            approved,
            errors.len(),
            first_error,
            elapsed.as_secs_f64(),
            approved as f64 / elapsed.as_secs_f64(),
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99),
            vm_kib("VmHWM:") as f64 / 1024.0,
            released_once,
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        );
        println!("{summary}");
        if !errors.is_empty() || !released_once {
            std::process::exit(1);
        }
    }
}

#[cfg(feature = "service")]
fn main() {
    load::main()
}

#[cfg(not(feature = "service"))]
fn main() {
    eprintln!("build with --features service");
}
