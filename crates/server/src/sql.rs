//! SQL text devenv builds itself: identifiers and literals quoted with postgres-protocol's
//! escaping, never by hand.

/// An SQL identifier, quoted.
pub fn quote_ident(name: &str) -> String {
    postgres_protocol::escape::escape_identifier(name)
}

/// An SQL string literal, quoted.
pub fn quote_literal(value: &str) -> String {
    postgres_protocol::escape::escape_literal(value)
}
