//! The server-certificate check behind every `sslmode`: which roots a host is checked
//! against (`sslrootcert`, the RDS bundle for RDS hosts, `~/.postgresql/root.crt`), how much
//! is checked (nothing, the chain, the chain and the name), and a refusal that keeps what the
//! message needs (host, issuer, names, roots) instead of a bare rustls error.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::{rds, SettingsError, SslMode, Why};

/// ring, the one crypto provider of devenv's TLS.
pub(super) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Where a set of roots came from, as messages name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootsName {
    /// `sslrootcert=FILE`.
    File(PathBuf),
    /// `sslrootcert=system`.
    System,
    /// The RDS bundle devenv ships.
    Rds,
    /// libpq's default `~/.postgresql/root.crt`.
    Home(PathBuf),
}

impl fmt::Display for RootsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootsName::File(path) => write!(f, "the CA file sslrootcert={}", path.display()),
            RootsName::System => f.write_str("the system's store (sslrootcert=system)"),
            RootsName::Rds => write!(
                f,
                "the RDS CA bundle devenv ships ({}; no sslrootcert given)",
                rds::SOURCE
            ),
            RootsName::Home(path) => write!(f, "{} (libpq's default sslrootcert)", path.display()),
        }
    }
}

/// Roots and the webpki verifier over them.
#[derive(Debug)]
pub(super) struct Roots {
    name: RootsName,
    verifier: Arc<WebPkiServerVerifier>,
}

impl Roots {
    /// The CA certificates of a PEM file (`home`: libpq's default file).
    pub(super) fn from_file(path: &Path, home: bool) -> Result<Roots, SettingsError> {
        let problem = |problem: String| SettingsError::RootCert {
            path: path.to_path_buf(),
            problem,
        };
        if !path.is_file() {
            return Err(problem(
                "does not exist (point it at the server's CA certificate file, or use sslrootcert=system for the system's store)".into(),
            ));
        }
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(Iterator::collect)
            .map_err(|e| problem(format!("is not a PEM certificate file ({e})")))?;
        let name = if home {
            RootsName::Home(path.to_path_buf())
        } else {
            RootsName::File(path.to_path_buf())
        };
        Roots::of(name, certs).map_err(problem)
    }

    /// The operating system's roots.
    pub(super) fn system() -> Result<Roots, SettingsError> {
        let found = rustls_native_certs::load_native_certs();
        if found.certs.is_empty() {
            let detail = found
                .errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            return Err(SettingsError::NoSystemRoots {
                detail: if detail.is_empty() {
                    "none found".into()
                } else {
                    detail
                },
            });
        }
        Roots::of(RootsName::System, found.certs)
            .map_err(|detail| SettingsError::NoSystemRoots { detail })
    }

    /// The RDS bundle, parsed once per process.
    fn rds() -> &'static Roots {
        static RDS: OnceLock<Roots> = OnceLock::new();
        RDS.get_or_init(|| {
            Roots::of(RootsName::Rds, rds::certificates())
                .expect("the shipped RDS bundle holds CA certificates (a unit test checks each)")
        })
    }

    fn of(name: RootsName, certs: Vec<CertificateDer<'static>>) -> Result<Roots, String> {
        let mut store = RootCertStore::empty();
        let (added, ignored) = store.add_parsable_certificates(certs);
        if added == 0 {
            return Err(if ignored == 0 {
                "holds no PEM certificate".into()
            } else {
                format!("holds {ignored} certificate(s), none usable as a root")
            });
        }
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Roots { name, verifier })
    }
}

/// How much of the certificate is checked for one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Nothing (`require` without a root file): encryption only.
    Nothing,
    /// The chain (`verify-ca`, or a weaker mode with a root file, as libpq).
    Chain,
    /// The chain and the name (`verify-full`).
    Full,
}

/// The verifier of one [`super::Tls`]: picks the roots and the check per host.
#[derive(Debug)]
pub(super) struct Verifier {
    mode: SslMode,
    /// `sslrootcert`.
    explicit: Option<Roots>,
    /// `~/.postgresql/root.crt`, when there and no `sslrootcert` was given.
    home: Option<Roots>,
}

impl Verifier {
    pub(super) fn new(mode: SslMode, explicit: Option<Roots>, home: Option<Roots>) -> Verifier {
        Verifier {
            mode,
            explicit,
            home,
        }
    }

    /// The roots and the check for `host`; `None` roots with a check: none to check with.
    fn plan(&self, host: &str) -> (Check, Option<&Roots>) {
        let files = self.explicit.as_ref().or(self.home.as_ref());
        match self.mode {
            SslMode::VerifyFull | SslMode::VerifyCa => {
                let roots = self.explicit.as_ref().or_else(|| {
                    if rds::is_rds_host(host) {
                        Some(Roots::rds())
                    } else {
                        self.home.as_ref()
                    }
                });
                let check = if self.mode == SslMode::VerifyFull {
                    Check::Full
                } else {
                    Check::Chain
                };
                (check, roots)
            }
            // libpq: a root file makes the weaker modes check the chain.
            _ => match files {
                Some(roots) => (Check::Chain, Some(roots)),
                None => (Check::Nothing, None),
            },
        }
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let host = server_name.to_str().into_owned();
        let refuse = |problem: Problem, roots: Option<&RootsName>| {
            rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                Arc::new(Refused::new(
                    host.clone(),
                    end_entity,
                    roots.cloned(),
                    problem,
                )),
            )))
        };
        let (check, roots) = self.plan(&host);
        let roots = match (check, roots) {
            (Check::Nothing, _) => return Ok(ServerCertVerified::assertion()),
            (_, Some(roots)) => roots,
            (_, None) => return Err(refuse(Problem::NoRoot(self.mode), None)),
        };
        match roots.verifier.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => Ok(verified),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if check == Check::Chain => Ok(ServerCertVerified::assertion()),
            Err(rustls::Error::InvalidCertificate(problem)) => {
                Err(refuse(Problem::Certificate(problem), Some(&roots.name)))
            }
            Err(other) => Err(other),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What was wrong.
#[derive(Debug, Clone)]
enum Problem {
    /// No roots to check against.
    NoRoot(SslMode),
    /// The check failed.
    Certificate(CertificateError),
}

/// A server certificate devenv's verifier refused, with what a message needs.
#[derive(Debug, Clone)]
pub struct Refused {
    /// The host connected to.
    pub host: String,
    /// The certificate's issuer (RFC 4514), when it parses.
    pub issuer: Option<String>,
    /// The certificate's subject, when it parses.
    pub subject: Option<String>,
    /// The host names and addresses it is for (subjectAltName).
    pub names: Vec<String>,
    /// The roots it was checked against.
    pub roots: Option<RootsName>,
    problem: Problem,
}

impl Refused {
    fn new(
        host: String,
        cert: &CertificateDer<'_>,
        roots: Option<RootsName>,
        problem: Problem,
    ) -> Refused {
        use x509_cert::der::Decode as _;
        let parsed = x509_cert::Certificate::from_der(cert.as_ref()).ok();
        let names = parsed
            .as_ref()
            .map_or_else(Vec::new, |c| alt_names(&c.tbs_certificate));
        Refused {
            names,
            host,
            issuer: parsed
                .as_ref()
                .map(|c| c.tbs_certificate.issuer.to_string()),
            subject: parsed
                .as_ref()
                .map(|c| c.tbs_certificate.subject.to_string()),
            roots,
            problem,
        }
    }

    /// What it was, and the message that says what to do.
    pub(super) fn explain(&self, mode: SslMode) -> (Why, String) {
        let host = &self.host;
        let issuer = self
            .issuer
            .as_deref()
            .unwrap_or("an issuer that does not parse");
        let roots = self
            .roots
            .as_ref()
            .map_or_else(|| "no roots".to_owned(), ToString::to_string);
        match &self.problem {
            Problem::NoRoot(mode) => (
                Why::NoRoot,
                format!(
                    "sslmode={mode} needs a root certificate to check {host} against, and none is given: set sslrootcert to that server's CA certificate file (or `system` for the system's store); libpq's default ~/.postgresql/root.crt does not exist either"
                ),
            ),
            Problem::Certificate(CertificateError::UnknownIssuer) => (
                Why::Untrusted,
                format!(
                    "the certificate of {host} is not trusted: it was issued by `{issuer}`, which {roots} does not vouch for (sslmode={mode}); set sslrootcert to the CA certificate that issued it (or `system`), or use sslmode=require to encrypt without checking"
                ),
            ),
            Problem::Certificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => (
                Why::WrongName,
                format!(
                    "the certificate of {host} is for {}, not {host} (sslmode=verify-full checks the host name): connect by a name it holds, or use sslmode=verify-ca to check the issuer only",
                    if self.names.is_empty() {
                        format!(
                            "no host name (subject `{}`)",
                            self.subject.as_deref().unwrap_or("unreadable")
                        )
                    } else {
                        self.names.join(", ")
                    }
                ),
            ),
            Problem::Certificate(other) => (
                Why::BadCertificate,
                format!(
                    "the certificate of {host} (issued by `{issuer}`) was refused: {other} (checked against {roots}, sslmode={mode})"
                ),
            ),
        }
    }
}

/// The DNS names and IP addresses of a certificate's subjectAltName.
fn alt_names(tbs: &x509_cert::TbsCertificate) -> Vec<String> {
    use x509_cert::ext::pkix::name::GeneralName;
    let Ok(Some((_, san))) = tbs.get::<x509_cert::ext::pkix::SubjectAltName>() else {
        return Vec::new();
    };
    san.0
        .iter()
        .filter_map(|name| match name {
            GeneralName::DnsName(dns) => Some(dns.to_string()),
            GeneralName::IpAddress(octets) => {
                let bytes = octets.as_bytes();
                let ip = match bytes.len() {
                    4 => <[u8; 4]>::try_from(bytes).ok().map(std::net::IpAddr::from),
                    16 => <[u8; 16]>::try_from(bytes).ok().map(std::net::IpAddr::from),
                    _ => None,
                };
                ip.map(|ip| ip.to_string())
            }
            _ => None,
        })
        .collect()
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.problem {
            Problem::NoRoot(_) => f.write_str("no root certificate to check with"),
            Problem::Certificate(problem) => write!(f, "{problem}"),
        }
    }
}

impl std::error::Error for Refused {}

#[cfg(test)]
mod tests {
    use super::*;

    const RDS_HOST: &str = "cruddur-db-instance.c8x1.us-east-1.rds.amazonaws.com";

    fn bundle_file() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("certs/rds-global-bundle.pem")
    }

    #[test]
    fn rds_hosts_without_sslrootcert_are_checked_against_the_shipped_bundle() {
        let verifier = Verifier::new(SslMode::VerifyFull, None, None);
        let (check, roots) = verifier.plan(RDS_HOST);
        assert_eq!(check, Check::Full);
        assert_eq!(roots.map(|r| &r.name), Some(&RootsName::Rds));
        // Another host has nothing to be checked against.
        let (check, roots) = verifier.plan("db.example.com");
        assert_eq!((check, roots.is_none()), (Check::Full, true));
        // verify-ca: the bundle, the chain only.
        let verify_ca = Verifier::new(SslMode::VerifyCa, None, None);
        let (check, roots) = verify_ca.plan(RDS_HOST);
        assert_eq!(
            (check, roots.map(|r| &r.name)),
            (Check::Chain, Some(&RootsName::Rds))
        );
        // require encrypts without checking, as libpq, even on RDS.
        let require = Verifier::new(SslMode::Require, None, None);
        let (check, roots) = require.plan(RDS_HOST);
        assert_eq!((check, roots.is_none()), (Check::Nothing, true));
    }

    #[test]
    fn an_sslrootcert_or_libpqs_default_file_wins_over_the_bundle_where_libpq_would_use_it() {
        let explicit = || Some(Roots::from_file(&bundle_file(), false).unwrap());
        let with_file = Verifier::new(SslMode::VerifyFull, explicit(), None);
        let (_, roots) = with_file.plan(RDS_HOST);
        assert_eq!(
            roots.map(|r| &r.name),
            Some(&RootsName::File(bundle_file()))
        );
        // ~/.postgresql/root.crt: for other hosts; RDS hosts keep the bundle.
        let home = || Some(Roots::from_file(&bundle_file(), true).unwrap());
        let verifier = Verifier::new(SslMode::VerifyFull, None, home());
        assert_eq!(
            verifier.plan(RDS_HOST).1.map(|r| &r.name),
            Some(&RootsName::Rds)
        );
        assert_eq!(
            verifier.plan("db.example.com").1.map(|r| &r.name),
            Some(&RootsName::Home(bundle_file()))
        );
        // A root file makes require check the chain (libpq).
        let require = Verifier::new(SslMode::Require, explicit(), None);
        let (check, _) = require.plan("db.example.com");
        assert_eq!(check, Check::Chain);
        // A file holding no certificate is refused with its name.
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").unwrap();
        let e = Roots::from_file(&empty, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("sslrootcert {} holds no PEM certificate", empty.display())
        );
    }
}
