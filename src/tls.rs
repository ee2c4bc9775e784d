//! TLS configuration (pending).
