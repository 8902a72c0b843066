//! `--tls-cert`, `--tls-key`, `--tls-ca`, `--insecure`: the same four options on every
//! command that serves or dials gRPC (what each means: `matproof_protocol::tls`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use matproof_client::{Peer, TlsOptions};

/// TLS options of one command.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// PEM certificate chain: a server's own, or a client's certificate (mTLS).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA: a client trusts only it for the server's certificate (default: the public web
    /// roots); a verifier node requires provider client certificates signed by it.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// Allow plaintext off loopback (listening on a public address, or dialling an
    /// `http://` URL of another host): everything, inputs and results included, is readable
    /// on the network.
    #[arg(long)]
    pub insecure: bool,
}

impl TlsArgs {
    /// The PEM files, read.
    pub fn options(&self) -> Result<TlsOptions> {
        TlsOptions::from_files(self.tls_cert.as_deref(), self.tls_key.as_deref(), self.tls_ca.as_deref(), self.insecure)
            .context("TLS options")
    }

    /// `url` dialled with these options as a client.
    pub fn peer(&self, url: &str) -> Result<Peer> {
        Ok(Peer::new(url, self.options()?))
    }
}
