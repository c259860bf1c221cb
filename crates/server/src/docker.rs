//! The docker backend (testcontainers). Filled in with `devenv up`.
