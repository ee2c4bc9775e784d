//! delivery (pending).
