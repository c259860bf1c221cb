//! Amazon RDS's CA bundle (`global-bundle.pem`), shipped in the binary: the roots RDS
//! certificates chain to (`rds-ca-rsa2048-g1`, `rds-ca-rsa4096-g1`, `rds-ca-ecc384-g1` and the
//! 2019 ones, per region), which are not in the webpki/Mozilla set. Hosts under
//! `rds.amazonaws.com` with no `sslrootcert` are checked against it, so `sslmode=verify-full`
//! works with no file to download.
//!
//! The file is `crates/server/certs/rds-global-bundle.pem`; where it comes from, its date and
//! how to refresh it (`scripts/refresh-rds-bundle.sh`) are in `crates/server/certs/SOURCE.md`.

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;

/// The bundle, PEM.
pub const BUNDLE_PEM: &str = include_str!("../../certs/rds-global-bundle.pem");

/// Where the shipped bundle comes from, for messages.
pub const SOURCE: &str = "global-bundle.pem as of 2024-11, 115 certificates";

/// The domain RDS endpoints live under.
pub const DOMAIN: &str = "rds.amazonaws.com";

/// Whether `host` is an RDS endpoint (`<instance>.<id>.<region>.rds.amazonaws.com`).
pub fn is_rds_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host.strip_suffix(DOMAIN)
        .is_some_and(|rest| rest.is_empty() || rest.ends_with('.'))
}

/// The bundle's certificates, DER.
pub fn certificates() -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(BUNDLE_PEM.as_bytes())
        .filter_map(Result::ok)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_cert::der::Decode as _;
    use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};

    #[test]
    fn every_certificate_of_the_bundle_parses_and_is_a_ca() {
        let blocks = BUNDLE_PEM.matches("-----BEGIN CERTIFICATE-----").count();
        let certs: Vec<_> = CertificateDer::pem_slice_iter(BUNDLE_PEM.as_bytes())
            .collect::<Result<_, _>>()
            .expect("every PEM block decodes");
        assert_eq!(certs.len(), blocks);
        assert_eq!(certs.len(), 115, "the count SOURCE and SOURCE.md state");
        for der in &certs {
            let cert = x509_cert::Certificate::from_der(der.as_ref()).expect("X.509");
            let tbs = &cert.tbs_certificate;
            let subject = tbs.subject.to_string();
            assert!(subject.contains("Amazon RDS"), "{subject}");
            let (_, basic) = tbs
                .get::<BasicConstraints>()
                .expect("basic constraints decode")
                .unwrap_or_else(|| panic!("{subject}: no basic constraints"));
            assert!(basic.ca, "{subject} is not a CA");
            let (_, usage) = tbs
                .get::<KeyUsage>()
                .expect("key usage decodes")
                .unwrap_or_else(|| panic!("{subject}: no key usage"));
            assert!(
                usage.0.contains(KeyUsages::KeyCertSign),
                "{subject} cannot sign certificates"
            );
        }
        // rustls takes every one as a trust anchor.
        let mut store = rustls::RootCertStore::empty();
        let (added, ignored) = store.add_parsable_certificates(certs);
        assert_eq!((added, ignored), (115, 0));
    }

    #[test]
    fn rds_hosts_are_the_endpoints_under_rds_amazonaws_com() {
        assert!(is_rds_host(
            "cruddur-db-instance.c8x1.ca-central-1.rds.amazonaws.com"
        ));
        assert!(is_rds_host("X.Y.US-EAST-1.RDS.AMAZONAWS.COM."));
        assert!(!is_rds_host("rds.amazonaws.com.example.com"));
        assert!(!is_rds_host("evilrds.amazonaws.com"));
        assert!(!is_rds_host("db.example.com"));
        assert!(!is_rds_host("127.0.0.1"));
    }
}
