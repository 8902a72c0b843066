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

#[cfg(feature = "service")]
mod load {
    use std::sync::Arc;
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    use matproof_circuits::{TileProvingKey, TileVerifyingKey, development_setup};
    use matproof_protocol::identity::Identity;
    use matproof_protocol::matrix::{MatrixI8, random_i8};
    use matproof_protocol::npy;
    use matproof_protocol::receipt::{
        PURPOSE_COMMIT, PURPOSE_JOB, PURPOSE_RESPOND, ResponseHasher, SignedChallenge, SignedVerdict, Verdict,
        job_commitment_bytes, respond_signing_bytes,
    };
    use matproof_protocol::spec::{JobSpec, Policy, VerificationMode};
    use matproof_protocol::tiling::{CircuitShape, Tiling};
    use matproof_protocol::transcript::Challenge;
    use matproof_protocol::wire::pb;
    use matproof_prover::{CommittedJob, CpuBackend, execute};
    use matproof_verifier::ledger::TransferState;
    use matproof_verifier::service::accounts::{consumer_account, provider_account};
    use matproof_verifier::service::{NodeConfig, NodeLimits, start};
    use pb::verifier_client::VerifierClient;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;
    use tonic::transport::Channel;

    const SHAPE: CircuitShape = CircuitShape { tm: 2, tn: 2, kc: 16 };
    const M: usize = 8;
    const K: usize = 16;
    const N: usize = 6;
    const SAMPLES: u32 = 2;
    const PRICE: u64 = 1_000;

    fn now_ms() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
    }

    fn proc_status_kib(field: &str) -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    struct Job {
        spec: JobSpec,
        open: pb::OpenJobRequest,
        committed: CommittedJob,
    }

    fn npy_bytes(matrix: &MatrixI8) -> Vec<u8> {
        let mut out = Vec::new();
        npy::write_matrix(&mut out, matrix).unwrap();
        out
    }

    fn make_job(consumer: &Identity, provider: &Identity, vk_hash: [u8; 32], mode: VerificationMode) -> Job {
        let tiling = Tiling::new(M, K, N, SHAPE).unwrap();
        let seed = rand::random::<u64>();
        let a = random_i8(M, K, seed).unwrap();
        let b = random_i8(K, N, seed ^ 0xb).unwrap();
        let vectors = Challenge { job_id: [0; 32], r_c: [0; 32], seed: [9; 32] }.freivalds_vectors(2, N).unwrap();
        let execution = execute(&CpuBackend::best(), &tiling, &a, &b, &vectors).unwrap();
        let full = mode == VerificationMode::Full;
        let (a_npy, b_npy) = if full { (npy_bytes(&a), npy_bytes(&b)) } else { (Vec::new(), Vec::new()) };
        let committed = CommittedJob::new(tiling, a, b, execution).unwrap();
        let spec = JobSpec {
            m: M as u64,
            k: K as u64,
            n: N as u64,
            shape: SHAPE,
            r_a: committed.a_tree.root(),
            r_b: committed.b_tree.root(),
            vk_hash,
            policy: Policy {
                mode,
                samples: SAMPLES,
                freivalds_rounds: if full { 2 } else { 0 },
                quorum: 1,
                target_fraud_ppm: 100_000,
                deadline_unix_ms: now_ms() + 3_600_000,
            },
            price: PRICE,
            slash_amount: 0,
            consumer: consumer.public_key(),
            provider: provider.public_key(),
            nonce: rand::random::<[u8; 16]>().to_vec(),
        };
        let signature = consumer.sign(PURPOSE_JOB, &spec.canonical_bytes());
        let open =
            pb::OpenJobRequest { spec: Some((&spec).into()), consumer_signature: signature.0.to_vec(), a_npy, b_npy };
        Job { spec, open, committed }
    }

    fn chunks(
        job: &Job,
        openings: &[matproof_protocol::opening::TileOpening],
        provider: &Identity,
    ) -> Vec<pb::RespondChunk> {
        let job_id = job.spec.job_id();
        let r_c = job.committed.execution.c_tree.root();
        let part = |part| pb::RespondChunk { job_id: job_id.to_vec(), part: Some(part) };
        let full = job.spec.policy.mode == VerificationMode::Full;
        let c_values = if full { (M * N) as u64 } else { 0 };
        let mut hasher = ResponseHasher::new(&job_id, &r_c, c_values, openings.len() as u64);
        let mut out = Vec::new();
        if full {
            let c = job.committed.execution.c.as_slice();
            hasher.rows(c);
            out.push(part(pb::respond_chunk::Part::CRows(pb::CRows { first_row: 0, values: c.to_vec() })));
        }
        for o in openings {
            hasher.opening(o);
            out.push(part(pb::respond_chunk::Part::Opening(o.into())));
        }
        let sig = provider.sign(PURPOSE_RESPOND, &respond_signing_bytes(&job_id, &r_c, &hasher.finish()));
        out.push(part(pb::respond_chunk::Part::End(pb::ResponseEnd { provider_signature: sig.0.to_vec() })));
        out
    }

    /// One job, open → verdict; the latency.
    async fn run_job(
        client: &mut VerifierClient<Channel>,
        job: Arc<Job>,
        provider: &Identity,
        pk: Arc<TileProvingKey>,
    ) -> Result<Duration, String> {
        let started = Instant::now();
        let job_id = job.spec.job_id();
        client.open_job(job.open.clone()).await.map_err(|e| format!("open: {e}"))?;
        let r_c = job.committed.execution.c_tree.root();
        let sig = provider.sign(PURPOSE_COMMIT, &job_commitment_bytes(&job_id, &r_c));
        let req = pb::CommitRequest { job_id: job_id.to_vec(), r_c: r_c.to_vec(), provider_signature: sig.0.to_vec() };
        let challenge = client.commit(req).await.map_err(|e| format!("commit: {e}"))?.into_inner();
        let challenge = SignedChallenge::try_from(&challenge).map_err(|e| format!("challenge: {e}"))?;
        challenge.verify().map_err(|e| format!("challenge signature: {e}"))?;
        let proving = job.clone();
        let openings = tokio::task::spawn_blocking(move || {
            proving.committed.respond(&pk, &challenge.challenge, SAMPLES as usize, 1)
        })
        .await
        .map_err(|e| format!("prove: {e}"))?
        .map_err(|e| format!("prove: {e}"))?;
        let stream = chunks(&job, &openings, provider);
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

        let (pk, vk): (TileProvingKey, TileVerifyingKey) =
            development_setup(SHAPE, &mut ChaCha20Rng::seed_from_u64(7)).expect("setup");
        let vk_hash = vk.hash();
        let pk = Arc::new(pk);
        let dir = tempfile::tempdir().expect("temp dir");
        let node = start(NodeConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: format!("sqlite://{}?mode=rwc", dir.path().join("node.db").display()),
            identity: Identity::generate().unwrap(),
            verifying_keys: vec![vk],
            limits: NodeLimits::default(),
        })
        .await
        .expect("start node");
        let ledger = node.ledger().clone();

        // Parties and jobs (the provider's GEMM execution) are prepared before the clock starts.
        let mut prepared = Vec::new();
        for _ in 0..clients {
            let consumer = Identity::generate().unwrap();
            let provider = Arc::new(Identity::generate().unwrap());
            ledger.deposit(&consumer_account(&consumer.public_key()), PRICE * jobs_per_client as u64).await.unwrap();
            let jobs: Vec<Arc<Job>> =
                (0..jobs_per_client).map(|_| Arc::new(make_job(&consumer, provider.as_ref(), vk_hash, mode))).collect();
            prepared.push((consumer, provider, jobs));
        }

        let started = Instant::now();
        let mut tasks = Vec::new();
        for (_consumer, provider, jobs) in &prepared {
            let (provider, jobs, pk, url) = (provider.clone(), jobs.clone(), pk.clone(), node.url());
            tasks.push(tokio::spawn(async move {
                let mut client = VerifierClient::connect(url).await.expect("connect");
                let mut out = Vec::new();
                for job in jobs {
                    out.push(run_job(&mut client, job, &provider, pk.clone()).await);
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
        for (consumer, provider, jobs) in &prepared {
            let mut posted = 0u64;
            for job in jobs {
                match ledger.transfer(&job.spec.job_id()).await {
                    Ok(t) if t.state == TransferState::Posted => posted += 1,
                    _ => {}
                }
            }
            let paid = ledger.balance(&provider_account(&provider.public_key())).await.unwrap();
            let left = ledger.balance(&consumer_account(&consumer.public_key())).await.unwrap();
            released_once &= paid == posted * PRICE && left == (jobs.len() as u64 - posted) * PRICE;
        }
        let approved = latencies.len();
        node.shutdown().await;

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
            proc_status_kib("VmHWM:") as f64 / 1024.0,
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
