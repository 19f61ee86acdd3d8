//! hindsight's recorder: the event model and trace file format ([`format`]), and — with the
//! default `record` feature — what runs inside a program to capture its locks, tasks and
//! accesses.
#![warn(missing_docs)]

pub mod format;
