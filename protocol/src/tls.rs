//! TLS for every gRPC endpoint (feature `grpc`): one set of options, read once from
//! `--tls-cert`, `--tls-key`, `--tls-ca` and `--insecure`, that gives a server its
//! [`ServerTlsConfig`] and a client its [`Endpoint`], and the one rule about plaintext:
//! **plaintext only on loopback, or with `insecure`.**
//!
//! * A server with a certificate serves TLS. Its `ca` is the CA that client certificates must
//!   chain to; they stay optional at the handshake (consumers have none), and the verifier
//!   node requires one on the provider's calls ([`has_client_certificate`]). A server
//!   without a certificate listens in plaintext only on a loopback address unless `insecure`.
//! * A client dials `https://` with `ca` as its only trust anchor (the public web roots
//!   without it) and presents its certificate, if any, as a client certificate. It dials
//!   `http://` only to a loopback host unless `insecure`, and never with TLS options set (a
//!   forgotten `s` would otherwise silently send in the clear).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// Why TLS options could not be read or applied.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("reading {flag} {path}: {source}")]
    Read {
        /// The option that named it (`--tls-cert`, `--tls-key`, `--tls-ca`).
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A certificate without its key, or a key without its certificate.
    #[error("--tls-cert and --tls-key go together (got only {given})")]
    Unpaired {
        /// The one that was given.
        given: &'static str,
    },
    /// A server was given a CA for client certificates but no certificate of its own.
    #[error("--tls-ca on a server needs --tls-cert and --tls-key (client certificates are only checked over TLS)")]
    CaWithoutIdentity,
    /// Plaintext refused: a non-loopback listening address without a certificate.
    #[error(
        "refusing to listen in plaintext on {addr}, which is not loopback: give --tls-cert/--tls-key, or --insecure"
    )]
    PlaintextListen {
        /// The address.
        addr: SocketAddr,
    },
    /// Plaintext refused: an `http://` URL to a host that is not loopback.
    #[error("refusing plaintext to {url}, which is not loopback: use https://, or --insecure")]
    PlaintextDial {
        /// The URL.
        url: String,
    },
    /// TLS options were given for an `http://` URL.
    #[error("TLS options given for the plaintext URL {url}: use https://")]
    TlsForPlaintextUrl {
        /// The URL.
        url: String,
    },
    /// A URL's scheme is neither `http` nor `https`.
    #[error("{url}: the scheme must be http:// or https://")]
    Scheme {
        /// The URL.
        url: String,
    },
    /// The URL does not parse, or tonic refused the TLS settings (a malformed PEM file).
    #[error("{url}: {source}")]
    Transport {
        /// The URL (or the listening address, for a server).
        url: String,
        /// The cause.
        #[source]
        source: tonic::transport::Error,
    },
}

/// A certificate chain and its private key, as PEM.
#[derive(Clone)]
pub struct PemIdentity {
    /// The certificate chain (leaf first).
    pub cert_pem: Vec<u8>,
    /// The private key.
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for PemIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never reaches a log.
        f.debug_struct("PemIdentity").field("cert_pem_bytes", &self.cert_pem.len()).finish_non_exhaustive()
    }
}

/// One side's TLS settings (see the module documentation for what each means on a server
/// and on a client). The default is no TLS, plaintext on loopback only.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// The server's certificate, or the client's certificate (mTLS).
    pub identity: Option<PemIdentity>,
    /// A server: the CA of client certificates. A client: the CA that signed the server's.
    pub ca_pem: Option<Vec<u8>>,
    /// Plaintext allowed off loopback.
    pub insecure: bool,
}

/// How an endpoint runs: what a server or a client says in its one line at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TLS; `client_ca`: client certificates are checked against a CA.
    Tls {
        /// Whether a CA for client certificates is set.
        client_ca: bool,
    },
    /// Plaintext, on (or to) a loopback address.
    PlaintextLoopback,
    /// Plaintext off loopback, allowed by `insecure`.
    PlaintextInsecure,
}

impl Transport {
    /// Whether it is TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, Transport::Tls { .. })
    }

    /// `https` or `http`.
    pub fn scheme(self) -> &'static str {
        if self.is_tls() { "https" } else { "http" }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Tls { client_ca: false } => "TLS",
            Transport::Tls { client_ca: true } => "TLS, client certificates checked against --tls-ca",
            Transport::PlaintextLoopback => "plaintext, loopback only (no TLS)",
            Transport::PlaintextInsecure => "PLAINTEXT off loopback (--insecure): traffic is readable on the network",
        })
    }
}

fn read_pem(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { flag, path: path.to_path_buf(), source })
}

impl TlsOptions {
    /// Reads the PEM files named by `--tls-cert`, `--tls-key`, `--tls-ca`.
    pub fn from_files(
        cert: Option<&Path>,
        key: Option<&Path>,
        ca: Option<&Path>,
        insecure: bool,
    ) -> Result<Self, TlsError> {
        let identity = match (cert, key) {
            (Some(cert), Some(key)) => {
                Some(PemIdentity { cert_pem: read_pem("--tls-cert", cert)?, key_pem: read_pem("--tls-key", key)? })
            }
            (Some(_), None) => return Err(TlsError::Unpaired { given: "--tls-cert" }),
            (None, Some(_)) => return Err(TlsError::Unpaired { given: "--tls-key" }),
            (None, None) => None,
        };
        let ca_pem = ca.map(|path| read_pem("--tls-ca", path)).transpose()?;
        Ok(TlsOptions { identity, ca_pem, insecure })
    }

    /// Whether any TLS material is set.
    pub fn has_tls_material(&self) -> bool {
        self.identity.is_some() || self.ca_pem.is_some()
    }

    /// A server's TLS configuration for listening on `listen` (`None`: plaintext), and how
    /// it runs. Plaintext off loopback is refused unless `insecure`.
    pub fn server(&self, listen: SocketAddr) -> Result<(Option<ServerTlsConfig>, Transport), TlsError> {
        let Some(identity) = &self.identity else {
            if self.ca_pem.is_some() {
                return Err(TlsError::CaWithoutIdentity);
            }
            return match (listen.ip().is_loopback(), self.insecure) {
                (true, _) => Ok((None, Transport::PlaintextLoopback)),
                (false, true) => Ok((None, Transport::PlaintextInsecure)),
                (false, false) => Err(TlsError::PlaintextListen { addr: listen }),
            };
        };
        let mut config = ServerTlsConfig::new().identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem));
        if let Some(ca) = &self.ca_pem {
            // Optional at the handshake: consumers have no certificate; the calls that need
            // one check it (`has_client_certificate`).
            config = config.client_ca_root(Certificate::from_pem(ca)).client_auth_optional(true);
        }
        Ok((Some(config), Transport::Tls { client_ca: self.ca_pem.is_some() }))
    }

    /// An endpoint for `url` (`https://` with these options, or `http://` to loopback or
    /// with `insecure`), and how it connects. Timeouts and windows are the caller's.
    pub fn endpoint(&self, url: &str) -> Result<(Endpoint, Transport), TlsError> {
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|source| TlsError::Transport { url: url.to_string(), source })?;
        let uri = endpoint.uri().clone();
        match uri.scheme_str() {
            Some("https") => {
                let mut config = ClientTlsConfig::new();
                config = match &self.ca_pem {
                    Some(ca) => config.ca_certificate(Certificate::from_pem(ca)),
                    None => config.with_webpki_roots(),
                };
                if let Some(identity) = &self.identity {
                    config = config.identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem));
                }
                let endpoint = endpoint
                    .tls_config(config)
                    .map_err(|source| TlsError::Transport { url: url.to_string(), source })?;
                Ok((endpoint, Transport::Tls { client_ca: self.ca_pem.is_some() }))
            }
            Some("http") => {
                if self.has_tls_material() {
                    return Err(TlsError::TlsForPlaintextUrl { url: url.to_string() });
                }
                match (is_loopback_host(uri.host().unwrap_or_default()), self.insecure) {
                    (true, _) => Ok((endpoint, Transport::PlaintextLoopback)),
                    (false, true) => Ok((endpoint, Transport::PlaintextInsecure)),
                    (false, false) => Err(TlsError::PlaintextDial { url: url.to_string() }),
                }
            }
            _ => Err(TlsError::Scheme { url: url.to_string() }),
        }
    }
}

/// Whether `host` (a URL's host: a name, an IPv4 address or a bracketed IPv6 address) is
/// this machine: `localhost` or a loopback address.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether the caller of `request` presented a client certificate that chains to the
/// server's `--tls-ca` (the TLS handshake checked the chain; without a CA no certificate is
/// asked for, so this is `false`).
pub fn has_client_certificate<T>(request: &tonic::Request<T>) -> bool {
    request.peer_certs().is_some_and(|certs| !certs.is_empty())
}

/// Whether a call failed in the transport (the connection or its TLS handshake: a
/// plaintext client at a TLS server, an untrusted certificate), not by the peer's answer:
/// tonic reports those as `UNKNOWN` with the transport error as the source.
pub fn is_transport_failure(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some_and(|source| source.is::<tonic::transport::Error>())
}

/// A peer to dial: its URL and the TLS options to dial it with.
#[derive(Debug, Clone)]
pub struct Peer {
    /// `https://HOST:PORT` (or `http://` on loopback or with `insecure`).
    pub url: String,
    /// The client's TLS options.
    pub tls: TlsOptions,
}

impl Peer {
    /// `url` with `tls`.
    pub fn new(url: impl Into<String>, tls: TlsOptions) -> Self {
        Peer { url: url.into(), tls }
    }

    /// The endpoint (see [`TlsOptions::endpoint`]).
    pub fn endpoint(&self) -> Result<(Endpoint, Transport), TlsError> {
        self.tls.endpoint(&self.url)
    }
}

/// A URL without TLS options: plaintext to loopback, or `https://` trusting the web roots.
impl From<&str> for Peer {
    fn from(url: &str) -> Self {
        Peer::new(url, TlsOptions::default())
    }
}

impl From<&String> for Peer {
    fn from(url: &String) -> Self {
        Peer::new(url.as_str(), TlsOptions::default())
    }
}

impl From<String> for Peer {
    fn from(url: String) -> Self {
        Peer::new(url, TlsOptions::default())
    }
}

impl From<&Peer> for Peer {
    fn from(peer: &Peer) -> Self {
        peer.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised() {
        for host in ["localhost", "LOCALHOST", "127.0.0.1", "127.3.4.5", "[::1]", "::1"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["example.com", "10.0.0.1", "[2001:db8::1]", "localhost.example.com", ""] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn plaintext_off_loopback_needs_insecure() {
        let plain = TlsOptions::default();
        let open = TlsOptions { insecure: true, ..TlsOptions::default() };
        let public: SocketAddr = "0.0.0.0:7001".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        assert!(matches!(plain.server(public), Err(TlsError::PlaintextListen { .. })));
        assert_eq!(plain.server(local).unwrap().1, Transport::PlaintextLoopback);
        assert_eq!(open.server(public).unwrap().1, Transport::PlaintextInsecure);
        assert!(matches!(plain.endpoint("http://example.com:7001"), Err(TlsError::PlaintextDial { .. })));
        assert_eq!(plain.endpoint("http://localhost:7001").unwrap().1, Transport::PlaintextLoopback);
        assert_eq!(open.endpoint("http://example.com:7001").unwrap().1, Transport::PlaintextInsecure);
        assert!(matches!(plain.endpoint("ftp://localhost:7001"), Err(TlsError::Scheme { .. })));
    }

    #[test]
    fn tls_options_never_go_out_in_plaintext() {
        let with_ca = TlsOptions { ca_pem: Some(b"not read here".to_vec()), ..TlsOptions::default() };
        assert!(matches!(with_ca.endpoint("http://127.0.0.1:7001"), Err(TlsError::TlsForPlaintextUrl { .. })));
        assert!(matches!(with_ca.server("127.0.0.1:0".parse().unwrap()), Err(TlsError::CaWithoutIdentity)));
        assert!(matches!(
            TlsOptions::from_files(Some(Path::new("c.pem")), None, None, false),
            Err(TlsError::Unpaired { given: "--tls-cert" })
        ));
    }
}
