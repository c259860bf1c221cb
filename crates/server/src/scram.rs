//! Quick SCRAM: a SCRAM-SHA-256 verifier with few PBKDF2 iterations, for the servers whose
//! logins tests pay for.
//!
//! A SCRAM login makes the *client* run PBKDF2 with the iteration count the server's stored
//! verifier names: PostgreSQL writes 4096, which costs a few hundred milliseconds per
//! connection in an unoptimised (debug) build of the client, i.e. in every test binary of a
//! user's crate, whose profile does not optimise the hashing crates. A verifier of the same
//! password with [`QUICK_ITERATIONS`] costs the client microseconds, works on every PostgreSQL
//! version devenv runs (13 to 18) and with every client (tokio-postgres, sqlx, libpq), and keeps
//! the password asked for: nobody who lacks it logs in. The verifier is written with `ALTER
//! ROLE ... PASSWORD 'SCRAM-SHA-256$...'`, which PostgreSQL stores as given (RFC 5802, 7677;
//! the format is PostgreSQL's `scram_build_secret`).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The iteration count of quick verifiers: 16 PBKDF2-HMAC-SHA-256 rounds, about 1/256 of
/// PostgreSQL's 4096.
pub const QUICK_ITERATIONS: u32 = 16;

/// The SCRAM-SHA-256 verifier of `password` with `iterations` and a random 16-byte salt, as
/// PostgreSQL stores it: `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
pub fn verifier(password: &str, iterations: u32) -> String {
    let mut salt = [0u8; 16];
    // The salt only needs to differ between verifiers; a failing system RNG leaves it to the
    // clock and the process.
    if getrandom::fill(&mut salt).is_err() {
        let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
        salt.copy_from_slice(&Sha256::digest(seed.as_bytes())[..16]);
    }
    verifier_with_salt(password, iterations, &salt)
}

fn verifier_with_salt(password: &str, iterations: u32, salt: &[u8]) -> String {
    // PostgreSQL (and every client) normalises the password with SASLprep, and uses it as is
    // when that fails.
    let prepared = stringprep::saslprep(password)
        .map_or_else(|_| password.as_bytes().to_vec(), |p| p.as_bytes().to_vec());
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(&prepared, salt, iterations, &mut salted);
    let hmac = |key: &[u8], text: &[u8]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(text);
        mac.finalize().into_bytes()
    };
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(&salted, b"Server Key");
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        B64.encode(salt),
        B64.encode(stored_key),
        B64.encode(server_key)
    )
}

/// The iteration count of a stored SCRAM verifier (`pg_authid.rolpassword`), `None` for
/// another kind of password.
pub fn iterations_of(stored: &str) -> Option<u32> {
    stored
        .strip_prefix("SCRAM-SHA-256$")?
        .split(':')
        .next()?
        .parse()
        .ok()
}

/// The statement that gives `user` a quick verifier of `password`.
pub fn alter_role_sql(user: &str, password: &str) -> String {
    format!(
        "ALTER ROLE {} PASSWORD {}",
        crate::sql::quote_ident(user),
        crate::sql::quote_literal(&verifier(password, QUICK_ITERATIONS))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677, section 3: the exchange of user "user" with password "pencil". A client
    /// proof and server signature computed from our verifier's keys equal the RFC's.
    #[test]
    fn verifies_the_rfc_7677_exchange() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let v = verifier_with_salt("pencil", 4096, &salt);
        let (head, keys) = v.rsplit_once('$').unwrap();
        assert_eq!(head, "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==");
        let (stored_key, server_key) = keys.split_once(':').unwrap();
        let (stored_key, server_key) = (
            B64.decode(stored_key).unwrap(),
            B64.decode(server_key).unwrap(),
        );
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
            r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
            c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let hmac = |key: &[u8]| {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
            mac.update(auth_message.as_bytes());
            mac.finalize().into_bytes()
        };
        // The client's proof, XORed with its signature, gives back the ClientKey, whose hash
        // is the StoredKey.
        let proof = B64
            .decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        let client_key: Vec<u8> = proof
            .iter()
            .zip(hmac(&stored_key))
            .map(|(p, s)| p ^ s)
            .collect();
        assert_eq!(
            Sha256::digest(&client_key).as_slice(),
            stored_key.as_slice()
        );
        assert_eq!(
            B64.encode(hmac(&server_key)),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        assert_eq!(iterations_of(&v), Some(4096));
        assert_eq!(iterations_of("md5abc"), None);
        let quick = verifier("pencil", QUICK_ITERATIONS);
        assert_eq!(iterations_of(&quick), Some(QUICK_ITERATIONS));
        assert_ne!(quick, verifier("pencil", QUICK_ITERATIONS), "salts differ");
    }
}
