//! A certificate authority made in the test (rcgen), for TLS over loopback: a server
//! certificate for `localhost` and `127.0.0.1`, client certificates, and a second, unrelated
//! CA for the "does not trust it" cases. Keys are fresh per run and never leave memory.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A certificate chain (leaf only here) and its private key, as PEM.
#[derive(Clone)]
pub struct CertPair {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
}

/// A test CA: it signs server and client certificates.
pub struct TestCa {
    /// The CA's own certificate, PEM (what a peer trusts).
    pub ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    /// A new CA named `name` (a fresh key).
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let ca_pem = params.self_signed(&key).expect("CA certificate").pem();
        TestCa { ca_pem, issuer: Issuer::new(params, key) }
    }

    /// A leaf certificate for `names` (host names or IP addresses), signed by this CA. No
    /// extended key usage: valid as a server and as a client certificate.
    pub fn leaf(&self, names: &[&str]) -> CertPair {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, "matproof test");
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf certificate");
        CertPair { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }

    /// A server certificate for this machine: `localhost` and `127.0.0.1`.
    pub fn loopback_server(&self) -> CertPair {
        self.leaf(&["localhost", "127.0.0.1"])
    }
}
