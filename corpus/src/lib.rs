//! Harnesses that run real programs nobody here wrote — unmodified, from crates.io — under
//! hindsight, each with a known answer (see the binaries in `src/bin/` and the tests in
//! `tests/`). This crate has no code of its own to share.
